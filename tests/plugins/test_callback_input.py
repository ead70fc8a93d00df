"""Helpline callbacks get the chatbot's rules for what may be stored or forwarded.

A counsellor's attachment reaches a child as a link: only http(s) ones are accepted
(the webhook plugin's ``attachments``, an OpenCHS media reply's ``content``). Text no
column can store, and values longer than their column, are a 400 naming the field, in
the plugins' callback schemas as in ours. The helpline here is a dead address: nothing
is delivered, only what the callbacks store is looked at.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from adapter.auth import issue_token
from adapter.extensions import db
from adapter.models import Direction, Message
from plugins.webhook.signing import signed_headers
from tests.conftest import make_client
from tests.support.sites import write_site

SECRET = "whsec_" + base64.b64encode(b"callback-input-secret-32-bytes!!").decode()


@pytest.fixture
def world(app_factory, tmp_path, monkeypatch):
    monkeypatch.setenv("CALLBACK_INPUT_SECRET", SECRET)
    folder = tmp_path / "countries-callbacks"
    write_site(folder, "ke", name="OpenCHS", plugin="openchs", routing={"locations": ["Mombasa"]},
               helpline={"base_url": "http://127.0.0.1:9/helpline/", "username": "u",
                         "password": "p", "callback_username": "cb",
                         "callback_password": "cb-secret"})
    write_site(folder, "wh", name="Webhook", plugin="webhook", routing={"locations": ["Kisumu"]},
               helpline={"url": "http://127.0.0.1:9/wh", "secret": "${CALLBACK_INPUT_SECRET}",
                         "callback_secrets": [SECRET]})
    app = app_factory(countries=folder)
    client = app.test_client()
    auth = {"Authorization": f"Token {make_client(app)}"}
    sessions = {}
    for site in ("ke", "wh"):
        started = client.post("/v1/conversations", headers=auth,
                              json={"site": site, "conversation_id": f"cb-{site}"})
        assert started.status_code == 201, started.json
        sessions[site] = started.json["id"]
    with app.app_context():
        token = issue_token(site="ke", ttl=3600)
        db.session.commit()
    return app, client, sessions, {"Authorization": f"Token {token}"}


def webhook(client, data: dict, event_type: str = "message.created"):
    """A signed event; the body as raw JSON (``\\ud800`` escapes survive)."""
    body = json.dumps({"type": event_type, "data": data})
    headers = signed_headers(SECRET, f"evt_{abs(hash(body))}", body, now=datetime.now(UTC))
    return client.post("/v1/sites/wh/webhook/events/", data=body, headers=headers)


def counsellor_messages(app) -> list[Message]:
    with app.app_context():
        found = db.session.execute(db.select(Message).where(
            Message.direction == Direction.TO_CLIENT)).scalars().all()
        db.session.expunge_all()
        return list(found)


@pytest.mark.parametrize("attachment", ["file:///etc/passwd", "javascript:alert(1)",
                                        "geo:-1.28,36.82", "https://h/" + "a" * 2048])
def test_a_webhook_attachment_that_is_not_a_web_link_is_400(world, attachment):
    app, client, sessions, _ = world
    response = webhook(client, {"session_id": sessions["wh"], "message_id": "h-1",
                                "text": "see", "attachments": [attachment]})
    assert response.status_code == 400, response.json
    assert "data.attachments.0" in response.json["errors"]
    assert counsellor_messages(app) == []


def test_a_webhook_attachment_in_rapidpros_form_keeps_its_content_type(world):
    app, client, sessions, _ = world
    response = webhook(client, {"session_id": sessions["wh"], "message_id": "h-2", "text": "",
                                "attachments": ["image/png:https://files.example/a.png"]})
    assert response.status_code == 201, response.json
    [message] = counsellor_messages(app)
    assert message.attachments == ["image/png:https://files.example/a.png"]


@pytest.mark.parametrize(("data", "field"), [
    ({"message_id": "h-3", "text": "a\x00b"}, "data.text"),
    ({"message_id": "h-4", "text": "hi", "counsellor": "\ud800"}, "data.counsellor"),
    ({"message_id": "m" * 201, "text": "hi"}, "data.message_id"),
    ({"message_id": "h-5", "text": "x" * 10_001}, "data.text"),
])
def test_a_webhook_value_no_column_can_hold_is_400(world, data, field):
    app, client, sessions, _ = world
    response = webhook(client, {"session_id": sessions["wh"], **data})
    assert response.status_code == 400, response.json
    assert field in response.json["errors"], response.json
    assert counsellor_messages(app) == []


@pytest.mark.parametrize("content", ["file:///etc/passwd", "javascript:alert(1)",
                                     "not a link at all"])
def test_an_openchs_media_reply_that_is_not_a_web_link_is_400(world, content):
    app, client, sessions, token = world
    response = client.post("/v1/sites/ke/openchs/message/", headers=token, json={
        "session_id": sessions["ke"], "message_type": "image", "content": content,
        "message_id": "o-1"})
    assert response.status_code == 400, response.json
    assert "content" in response.json["errors"]
    assert counsellor_messages(app) == []


def test_an_openchs_media_reply_with_a_web_link_is_an_attachment(world):
    app, client, sessions, token = world
    response = client.post("/v1/sites/ke/openchs/message/", headers=token, json={
        "session_id": sessions["ke"], "message_type": "image", "message_id": "o-2",
        "content": "image/jpeg:https://files.example/b.jpg"})
    assert response.status_code == 201, response.json
    [message] = counsellor_messages(app)
    assert (message.text, message.attachments) == ("", ["image/jpeg:https://files.example/b.jpg"])


@pytest.mark.parametrize(("message_type", "content", "stored"), [
    ("image", "https://files.example/c.png", "image/png:https://files.example/c.png"),
    ("image", "https://files.example/c", "image:https://files.example/c"),
    ("voice", "https://files.example/v.mp4", "audio:https://files.example/v.mp4"),
    ("document", "https://files.example/d.pdf", "application/pdf:https://files.example/d.pdf"),
])
def test_an_openchs_media_reply_keeps_the_content_type_it_says(world, message_type, content,
                                                               stored):
    app, client, sessions, token = world
    response = client.post("/v1/sites/ke/openchs/message/", headers=token, json={
        "session_id": sessions["ke"], "message_type": message_type, "message_id": "o-typed",
        "content": content})
    assert response.status_code == 201, response.json
    [message] = counsellor_messages(app)
    assert message.attachments == [stored]


@pytest.mark.parametrize(("body", "field"), [
    ({"content": "hi\x00"}, "content"),
    ({"content": "hi", "counsellor": "c" * 121}, "counsellor"),
    ({"content": "hi", "message_id": "m" * 201}, "message_id"),
    ({"content": "x" * 10_001}, "content"),
])
def test_an_openchs_reply_value_no_column_can_hold_is_400(world, body, field):
    app, client, sessions, token = world
    response = client.post("/v1/sites/ke/openchs/message/", headers=token,
                           json={"session_id": sessions["ke"], **body})
    assert response.status_code == 400, response.json
    assert field in response.json["errors"], response.json
    assert counsellor_messages(app) == []


def test_an_openchs_ack_with_a_nul_in_the_message_id_is_400(world):
    _, client, sessions, token = world
    response = client.post("/v1/sites/ke/openchs/ack/", headers=token,
                           json={"session_id": sessions["ke"], "message_id": "m\x00"})
    assert response.status_code == 400, response.json
    assert "message_id" in response.json["errors"]
