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


def test_site_health_shows_unset_secrets_and_failing_far_sides(app_factory, tmp_path,
                                                               monkeypatch):
    """An operator sees which site cannot be delivered to and which is failing."""
    from adapter.delivery.engine import drain
    from tests.support import loopback_plugin
    from tests.support.sites import write_site

    monkeypatch.delenv("TEST_UNSET_URL", raising=False)
    write_site(tmp_path, "good", name="Unreachable", plugin="loopback",
               routing={"locations": ["Goodland"]}, helpline={"url": "http://127.0.0.1:9/x"})
    write_site(tmp_path, "unset", name="Unset", plugin="loopback",
               routing={"locations": ["Unsetland"]}, helpline={"url": "${TEST_UNSET_URL}"})
    app = app_factory(countries=tmp_path, plugins=(loopback_plugin,))
    auth = {"Authorization": f"Token {make_client(app)}"}
    for location in ("Goodland", "Unsetland"):
        assert app.test_client().post("/v1/conversations", headers=auth, json={
            "location": location, "contact": {"uuid": f"c-{location}"}}).status_code == 201
    with app.app_context():
        drain(app)  # "good" is called and refused (nothing listens on port 9)

    body = app.test_client().get("/metrics", headers=monitor(app)).get_data(as_text=True)
    assert 'helpline_adapter_site_deliverable{site="unset",target="helpline"} 0.0' in body
    assert 'helpline_adapter_site_deliverable{site="good",target="helpline"} 1.0' in body
    assert 'helpline_adapter_deliveries_retrying{site="good",target="helpline"} 1.0' in body
    assert 'helpline_adapter_deliveries_retrying{site="unset"' not in body  # held, not tried
