"""/metrics: counts from the database, behind credentials."""


def test_metrics_need_credentials(client):
    assert client.get("/metrics").status_code == 401


def test_metrics_count_conversations_and_pending_deliveries(client, auth):
    started = client.post("/v1/conversations", headers=auth, json={
        "site": "lb", "contact": {"uuid": "c-metrics"}, "text": "hello"})
    assert started.status_code == 201

    body = client.get("/metrics", headers=auth).get_data(as_text=True)

    assert 'helpline_adapter_conversations{site="lb",state="requested"} 1.0' in body
    # the open call and the first message wait in the outbox
    assert 'helpline_adapter_deliveries{site="lb",status="pending",target="helpline"} 2.0' in body
    assert "hello" not in body
