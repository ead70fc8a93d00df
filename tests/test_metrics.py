"""/metrics: counts from the database, behind a monitor's credentials, over its sites."""

from tests.conftest import make_client


def test_metrics_need_credentials(client):
    assert client.get("/metrics").status_code == 401


def monitor(app, name: str = "prometheus", **kwargs) -> dict:
    return {"Authorization": f"Token {make_client(app, name, role='monitor', **kwargs)}"}


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


# --- The families of issue 18, from rows put in place with known timestamps ---------

def _history(app):
    """One conversation of each kind, with timestamps a test can compute buckets from."""
    from datetime import timedelta

    from adapter.extensions import db
    from adapter.models import Case, Conversation, Delivery, Message, utcnow

    now = utcnow()
    with app.app_context():
        taken = Conversation(namespace="weni", external_id="x1", site="lb", state="active",
                             client_pseudonym="client-1", contact_urn="tel:+254700000001",
                             created_at=now - timedelta(seconds=100),
                             waiting_since=now - timedelta(seconds=100),
                             assigned_at=now - timedelta(seconds=55))  # waited 45 s
        waiting = Conversation(namespace="weni", external_id="x2", site="lb",
                               state="waiting", client_pseudonym="client-2",
                               created_at=now - timedelta(seconds=400),
                               waiting_since=now - timedelta(seconds=400),
                               no_counsellor_at=now - timedelta(seconds=100))
        db.session.add_all([taken, waiting])
        db.session.flush()
        for n, (latency, direction) in enumerate([(0.2, "to_helpline"), (7, "to_helpline"),
                                                  (None, "to_helpline"), (3, "to_client")]):
            created = now - timedelta(seconds=60)
            db.session.add(Message(
                conversation_id=taken.id, direction=direction, sender_message_id=f"m{n}",
                text="zebra words", created_at=created,
                sent_at=None if latency is None else created + timedelta(seconds=latency),
                status="accepted" if latency is None else "sent"))
        for status, attempts, target, due in [("done", 3, "helpline", 0), ("failed", 5,
                                              "chatbot", 0), ("pending", 1, "helpline", 30),
                                              ("pending", 0, "helpline", -30)]:
            db.session.add(Delivery(lane=f"conv:{taken.id}", site="lb", target=target,
                                    action="message", conversation_id=taken.id,
                                    status=status, attempts=attempts,
                                    due_at=now - timedelta(seconds=due)))
        for status in ("created", "created", "failed", "pending"):
            db.session.add(Case(namespace="weni", site="lb", status=status))
        db.session.commit()


def test_the_families_count_what_the_rows_say(app, client):
    from tests.support.metrics import value

    _history(app)
    body = client.get("/metrics", headers=monitor(app)).get_data(as_text=True)

    def v(name, **labels):
        return value(body, "helpline_adapter_" + name, **labels)

    assert v("messages_accepted_total", site="lb", direction="to_helpline") == 3
    assert v("messages_accepted_total", site="lb", direction="to_client") == 1
    assert v("deliveries_finished_total", site="lb", target="helpline", outcome="done") == 1
    assert v("deliveries_finished_total", site="lb", target="chatbot", outcome="failed") == 1
    assert v("delivery_retries_total", site="lb", target="helpline") == 2  # 3 attempts
    assert v("delivery_retries_total", site="lb", target="chatbot") == 4
    assert v("dead_letters", site="lb", target="chatbot") == 1
    assert v("dead_letters", site="lb", target="helpline") is None
    assert v("backlog_deliveries", site="lb", target="helpline") == 2
    assert 29 < v("oldest_due_delivery_seconds", site="lb") < 60  # not the one due later
    assert v("oldest_due_delivery_seconds", site="ug") == 0

    latency = {le: v("message_delivery_latency_seconds_bucket", site="lb",
                     direction="to_helpline", le=le) for le in ("0.1", "0.25", "5.0", "10.0",
                                                                "+Inf")}
    assert latency == {"0.1": 0, "0.25": 1, "5.0": 1, "10.0": 2, "+Inf": 2}
    assert abs(v("message_delivery_latency_seconds_sum", site="lb",
                 direction="to_helpline") - 7.2) < 0.01
    assert v("message_delivery_latency_seconds_count", site="lb", direction="to_client") == 1

    assert v("conversation_wait_seconds_bucket", site="lb", le="30.0") == 0
    assert v("conversation_wait_seconds_bucket", site="lb", le="60.0") == 1
    assert abs(v("conversation_wait_seconds_sum", site="lb") - 45) < 0.01
    assert v("conversations_waiting", site="lb") == 1
    assert v("conversations_waiting", site="ug") == 0
    assert 399 < v("oldest_waiting_conversation_seconds", site="lb") < 460
    assert v("site_assignment_timeout_seconds", site="lb") == 300
    assert v("no_counsellor_total", site="lb") == 1
    # the waiting one heard no_counsellor after 300 s; the one taken never did
    assert v("no_counsellor_wait_seconds_bucket", site="lb", le="120.0") == 0
    assert v("no_counsellor_wait_seconds_bucket", site="lb", le="300.0") == 1
    assert v("no_counsellor_wait_seconds_count", site="lb") == 1
    assert abs(v("no_counsellor_wait_seconds_sum", site="lb") - 300) < 0.01
    assert v("cases_finished_total", site="lb", outcome="created") == 2
    assert v("cases_finished_total", site="lb", outcome="failed") == 1
    assert v("metrics_redis_up") == 1


def test_no_label_carries_an_id_a_text_or_a_urn(app, client, auth):
    """Every label value is a site code or one of a fixed set (le: a bucket bound)."""
    from adapter.delivery.engine import drain
    from tests.support.metrics import assert_labels_fixed

    started = client.post("/v1/conversations", headers=auth, json={
        "site": "lb", "contact": {"uuid": "c-labels", "urn": "tel:+254700000009"},
        "text": "my words"})
    cid = started.get_json()["id"]
    client.post(f"/v1/conversations/{cid}/messages", headers=auth,
                json={"message_id": "m-labels-2", "text": "more words"})
    with app.app_context():
        drain(app)
    _history(app)
    body = client.get("/metrics", headers=monitor(app)).get_data(as_text=True)

    assert assert_labels_fixed(body, {"lb", "ug"}) > 50
    for secret in ("my words", "zebra", "c-labels", "254700000009", cid):
        assert secret not in body


def test_redis_counters_are_shown_for_known_sites_only(app, client):
    from adapter import counters
    from tests.support.metrics import value

    counters.count(app, "rapidpro_throttled", "lb")
    counters.count(app, "rapidpro_throttled", "lb")
    counters.count(app, "rapidpro_pacing_waits", "not-a-site")
    body = client.get("/metrics", headers=monitor(app)).get_data(as_text=True)

    assert value(body, "helpline_adapter_rapidpro_throttled_total", site="lb") == 2
    assert value(body, "helpline_adapter_rapidpro_pacing_waits_total", site="lb") == 0
    assert "not-a-site" not in body
    only_ug = client.get("/metrics", headers=monitor(app, "ug-only", sites=["ug"])).get_data(
        as_text=True)
    assert 'site="lb"' not in only_ug
