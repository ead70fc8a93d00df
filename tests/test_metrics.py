"""/metrics: counts from the database, behind a monitor's credentials, over its sites."""

from tests.conftest import make_client


def test_metrics_need_credentials(client):
    assert client.get("/metrics").status_code == 401


def monitor(app, **kwargs) -> dict:
    return {"Authorization": f"Token {make_client(app, 'prometheus', role='monitor', **kwargs)}"}


def test_metrics_count_conversations_and_pending_deliveries(app, client, auth):
    started = client.post("/v1/conversations", headers=auth, json={
        "site": "lb", "contact": {"uuid": "c-metrics"}, "text": "hello"})
    assert started.status_code == 201

    assert client.get("/metrics", headers=auth).status_code == 403  # a chatbot's key
    body = client.get("/metrics", headers=monitor(app)).get_data(as_text=True)

    assert 'helpline_adapter_conversations{site="lb",state="requested"} 1.0' in body
    # the open call and the first message wait in the outbox
    assert 'helpline_adapter_deliveries{site="lb",status="pending",target="helpline"} 2.0' in body
    assert "hello" not in body


def test_a_monitor_sees_only_its_sites(app, client, auth):
    client.post("/v1/conversations", headers=auth, json={
        "site": "lb", "contact": {"uuid": "c-metrics"}, "text": "hello"})

    body = client.get("/metrics", headers=monitor(app, sites=["ug"])).get_data(as_text=True)

    assert 'site="lb"' not in body
    assert "helpline_adapter_oldest_pending_delivery_seconds 0.0" in body
