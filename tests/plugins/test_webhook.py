"""The webhook plugin: what we send is signed per Standard Webhooks; what the helpline
sends back is verified (±5 minutes, several secrets during a rotation) or refused 401."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook

from adapter.delivery import helpline_calls
from adapter.delivery.engine import drain
from adapter.extensions import db
from adapter.models import Conversation, Direction, Message
from adapter.state import state_of
from adapter.views import conversation_view, message_view
from plugins.webhook.signing import encode, signed_headers
from tests.conftest import make_client
from tests.support.receiver import receiving
from tests.support.sites import write_site

SECRET = "whsec_" + base64.b64encode(b"current-secret-32-bytes-long!!!!").decode()
OLD_SECRET = "whsec_" + base64.b64encode(b"previous-secret-32-bytes-long!!!").decode()
STRANGER = "whsec_" + base64.b64encode(b"someone-elses-secret-32-bytes!!!").decode()


@pytest.fixture
def receiver():
    with receiving(lambda count: ({"reference": f"ref-{count}"}, 200)) as peer:
        yield peer


@pytest.fixture
def world(app_factory, tmp_path, receiver, monkeypatch):
    monkeypatch.setenv("TEST_WEBHOOK_SECRET", SECRET)
    folder = tmp_path / "countries-webhook"
    write_site(folder, "wh", name="Webhook helpline", plugin="webhook",
               routing={"locations": ["Webland"]},
               helpline={"url": receiver.url, "secret": "${TEST_WEBHOOK_SECRET}",
                         "callback_secrets": [SECRET, OLD_SECRET]})
    app = app_factory(countries=folder)
    key = make_client(app)
    return app, app.test_client(), {"Authorization": f"Token {key}"}


def start(client, auth) -> str:
    response = client.post("/v1/conversations", headers=auth, json={
        "location": "webland", "contact": {"uuid": "c-9"}, "text": "help me"})
    assert response.status_code == 201, response.json
    with client.application.app_context():
        return db.session.execute(db.select(Conversation)).scalar_one().id


def test_a_message_with_attachments_carries_them_with_their_content_types(world, receiver):
    app, client, auth = world
    response = client.post("/v1/conversations", headers=auth, json={
        "location": "webland", "contact": {"uuid": "c-media"}, "text": "see",
        "attachments": ["image/jpeg:https://m.example/a.jpg", "https://m.example/b"]})
    assert response.status_code == 201, response.json
    with app.app_context():
        assert drain(app).failed == 0

    [message] = [json.loads(r["body"]) for r in receiver.received
                 if json.loads(r["body"])["type"] == "message.created"]
    assert message["data"]["attachments"] == ["https://m.example/a.jpg", "https://m.example/b"]
    assert message["data"]["media"] == [
        {"url": "https://m.example/a.jpg", "content_type": "image/jpeg"},
        {"url": "https://m.example/b", "content_type": None}]


def signed(payload: dict, secret: str = SECRET, when: datetime | None = None,
           webhook_id: str = "evt_1") -> tuple[str, dict]:
    body = encode(payload)
    return body, signed_headers(secret, webhook_id, body, now=when)


def post_event(client, payload, **kwargs):
    body, headers = signed(payload, **kwargs)
    return client.post("/v1/sites/wh/webhook/events/", data=body, headers=headers)


def test_outbound_events_are_signed_and_verify_with_the_site_secret(world, receiver):
    app, client, auth = world
    session_id = start(client, auth)
    with app.app_context():
        assert drain(app).failed == 0

    assert [json.loads(r["body"])["type"] for r in receiver.received] == [
        "conversation.opened", "message.created"]
    for item in receiver.received:
        Webhook(SECRET).verify(item["body"], item["headers"])  # raises if not
        with pytest.raises(Exception, match="signature"):
            Webhook(STRANGER).verify(item["body"], item["headers"])
    message = json.loads(receiver.received[1]["body"])
    assert message["data"]["session_id"] == session_id
    assert message["data"]["text"] == "help me"
    assert receiver.received[1]["headers"]["Webhook-Id"] == f"msg_{message['data']['message_id']}"


def test_a_signed_counsellor_message_is_accepted(world):
    app, client, auth = world
    session_id = start(client, auth)
    response = post_event(client, {"type": "message.created", "data": {
        "session_id": session_id, "message_id": "h-1", "text": "I hear you",
        "counsellor": "Zawadi"}})
    assert response.status_code == 201, response.json
    with app.app_context():
        reply = db.session.execute(db.select(Message).where(
            Message.direction == Direction.TO_CLIENT)).scalar_one()
        assert (reply.text, reply.sender) == ("I hear you", "Zawadi")


def test_a_key_rotation_accepts_the_previous_secret(world):
    _, client, auth = world
    session_id = start(client, auth)
    response = post_event(client, {"type": "conversation.assigned",
                                   "data": {"session_id": session_id, "counsellor": "Zawadi"}},
                          secret=OLD_SECRET)
    assert response.status_code == 200, response.json


@pytest.mark.parametrize("attack", ["tampered", "expired", "future", "stranger", "unsigned"])
def test_bad_signatures_are_refused_with_401(world, attack):
    app, client, auth = world
    session_id = start(client, auth)
    payload = {"type": "conversation.closed", "data": {"session_id": session_id}}
    when = {"expired": datetime.now(UTC) - timedelta(minutes=6),
            "future": datetime.now(UTC) + timedelta(minutes=6)}.get(attack)
    body, headers = signed(payload, secret=STRANGER if attack == "stranger" else SECRET,
                           when=when)
    if attack == "tampered":
        body = body.replace("conversation.closed", "conversation.assigned")
    if attack == "unsigned":
        headers = {"Content-Type": "application/json"}

    response = client.post("/v1/sites/wh/webhook/events/", data=body, headers=headers)

    assert response.status_code == 401
    assert response.json["code"] == "unauthorized"
    with app.app_context():
        assert db.session.get(Conversation, session_id).state != "closed"


def test_a_signature_four_minutes_old_is_still_accepted(world):
    _, client, auth = world
    session_id = start(client, auth)
    response = post_event(client, {"type": "conversation.closed",
                                   "data": {"session_id": session_id}},
                          when=datetime.now(UTC) - timedelta(minutes=4))
    assert response.status_code == 200 and response.json["status"] == "closed"


def test_signed_but_invalid_data_names_the_field(world):
    _, client, auth = world
    start(client, auth)
    response = post_event(client, {"type": "message.created", "data": {"session_id": "x"}})
    assert response.status_code == 400
    assert "data.message_id" in response.json["errors"]


def test_acknowledgement_names_the_helpline_message_and_is_signed(world, receiver):
    import requests

    app, client, auth = world
    session_id = start(client, auth)
    post_event(client, {"type": "message.created", "data": {
        "session_id": session_id, "message_id": "h-42", "text": "hi"}})
    state = state_of(app)
    with app.app_context(), requests.Session() as http:
        conversation = db.session.get(Conversation, session_id)
        reply = db.session.execute(db.select(Message).where(
            Message.direction == Direction.TO_CLIENT)).scalar_one()
        site = state.sites.get("wh")
        result = helpline_calls.call(
            state, site, "acknowledge", http,
            conversation=conversation_view(state.kinds["webhook"], site, conversation),
            message=message_view(reply), status="read")

    assert result.reference == "ref-1"
    [sent] = receiver.received
    Webhook(SECRET).verify(sent["body"], sent["headers"])
    assert json.loads(sent["body"])["data"] == {"session_id": session_id, "message_id": "h-42",
                                                "status": "read"}
    assert state.kinds["webhook"].supports_acks


def test_a_retried_event_keeps_its_webhook_id(app_factory, tmp_path, monkeypatch):
    """``webhook-id`` is the delivery's stable id (``msg_<our message id>``): a helpline
    that deduplicates by it, as Standard Webhooks asks, sees a retry once. Each attempt
    is signed afresh (its own timestamp)."""
    from sqlalchemy import update

    from adapter.models import Delivery, utcnow

    def answer(count):  # the message event: 503 the first time, then accepted
        return ({"busy": True}, 503) if count == 2 else ({"ok": True}, 200)

    monkeypatch.setenv("TEST_WEBHOOK_SECRET", SECRET)
    with receiving(answer) as peer:
        folder = tmp_path / "countries-webhook-retry"
        write_site(folder, "wh", name="Webhook helpline", plugin="webhook",
                   routing={"locations": ["Webland"]},
                   helpline={"url": peer.url, "secret": "${TEST_WEBHOOK_SECRET}"})
        app = app_factory(countries=folder)
        client = app.test_client()
        start(client, {"Authorization": f"Token {make_client(app)}"})
        with app.app_context():
            assert drain(app).retried == 1
            db.session.execute(update(Delivery).where(Delivery.status == "pending")
                               .values(due_at=utcnow()))  # its backoff, skipped
            db.session.commit()
            assert drain(app).done == 1

        messages = [r for r in peer.received
                    if json.loads(r["body"])["type"] == "message.created"]
    assert len(messages) == 2
    first, retry = (m["headers"] for m in messages)
    message_id = json.loads(messages[0]["body"])["data"]["message_id"]
    assert first["Webhook-Id"] == retry["Webhook-Id"] == f"msg_{message_id}"
    assert messages[0]["body"] == messages[1]["body"]
    for item in messages:
        Webhook(SECRET).verify(item["body"], item["headers"])


def test_a_return_and_its_transcript_reach_a_webhook_helpline_signed(
        app_factory, tmp_path, receiver, monkeypatch):
    """A child back within reopen_within: the same session opens again with `returning`
    and a webhook id of its own (a helpline deduplicating by it would otherwise drop it);
    each close's transcript is `case.transcript`, its webhook id stable per close."""
    monkeypatch.setenv("TEST_WEBHOOK_SECRET", SECRET)
    folder = tmp_path / "countries-webhook-returns"
    write_site(folder, "wh", name="Webhook helpline", plugin="webhook",
               routing={"locations": ["Webland"]},
               helpline={"url": receiver.url, "secret": "${TEST_WEBHOOK_SECRET}",
                         "callback_secrets": [SECRET]},
               policies={"reopen_within": 600, "transcript_to_case": True})
    app = app_factory(countries=folder)
    client = app.test_client()
    auth = {"Authorization": f"Token {make_client(app)}"}
    started = client.post("/v1/conversations", headers=auth, json={
        "location": "webland", "conversation_id": "run-w", "contact": {"uuid": "c-back"},
        "text": "help me", "intake": {"narrative": "it keeps happening"}})
    assert started.status_code == 201, started.json
    session = started.json["id"]
    for step in ({"path": "close", "json": {}}, {"path": "messages", "json": {"text": "again"}},
                 {"path": "close", "json": {}}):
        with app.app_context():
            assert drain(app).failed == 0
        answer = client.post(f"/v1/conversations/run-w/{step['path']}", headers=auth,
                             json=step["json"])
        assert answer.status_code in (200, 202), answer.json
    with app.app_context():
        assert drain(app).failed == 0

    events = [(r["headers"]["Webhook-Id"], json.loads(r["body"])) for r in receiver.received]
    opens = [(hook, e["data"]) for hook, e in events if e["type"] == "conversation.opened"]
    assert [hook for hook, _ in opens] == [f"open_{session}", f"open_{session}_r1"]
    assert opens[0][1]["returning"] is False and opens[1][1]["returning"] is True
    assert opens[1][1]["session_id"] == session and opens[1][1]["reopen_count"] == 1
    transcripts = [(hook, e["data"]) for hook, e in events if e["type"] == "case.transcript"]
    assert [hook for hook, _ in transcripts] == [f"transcript_{session}/0",
                                                 f"transcript_{session}/1"]
    last = transcripts[-1][1]
    assert last["session_id"] == session and last["reference"].startswith("ref-")
    assert [(m["role"], m["text"]) for m in last["messages"]] == [
        ("child", "help me"), ("child", "again")]
    for raw in receiver.received:  # every one signed with the site's secret
        Webhook(SECRET).verify(raw["body"], raw["headers"])
