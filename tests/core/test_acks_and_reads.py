"""Acknowledging counsellor messages, and reading a conversation (text only on request,
by clients allowed to read it)."""

from __future__ import annotations

import pytest

from adapter.extensions import db
from adapter.models import Delivery, Message
from tests.conftest import make_client

from .conftest import counsellor_message, default_body, start
from .test_errors import error_of


@pytest.fixture
def conversation_id(client, auth) -> str:
    return start(client, auth, default_body(conversation_id="weni-acks"))["conversation_id"]


def _status(app, message_id: str) -> Message:
    with app.app_context():
        message = db.session.execute(db.select(Message).where(
            (Message.id == message_id) | (Message.sender_message_id == message_id))).scalar_one()
        db.session.expunge(message)
        return message


def _ack(client, auth, conversation_id, message_id, status):
    return client.post(f"/v1/conversations/{conversation_id}/acks",
                       json={"message_id": message_id, "status": status}, headers=auth)


def test_an_ack_records_the_status(app, client, auth, conversation_id):
    message_id = counsellor_message(app, conversation_id)

    response = _ack(client, auth, conversation_id, message_id, "delivered")

    assert response.status_code == 200
    assert response.json == {"message_id": message_id, "status": "delivered"}
    message = _status(app, message_id)
    assert message.status == "delivered" and message.delivered_at is not None


def test_an_ack_may_name_the_helplines_message_id(app, client, auth, conversation_id):
    message_id = counsellor_message(app, conversation_id, message_id="openchs-991")

    response = _ack(client, auth, conversation_id, "openchs-991", "read")

    assert response.json == {"message_id": message_id, "status": "read"}


def test_statuses_only_move_forward(app, client, auth, conversation_id):
    forward = counsellor_message(app, conversation_id, message_id="hl-1")
    backward = counsellor_message(app, conversation_id, message_id="hl-2")

    assert _ack(client, auth, conversation_id, forward, "delivered").json["status"] == "delivered"
    assert _ack(client, auth, conversation_id, forward, "read").json["status"] == "read"
    assert _ack(client, auth, conversation_id, backward, "read").json["status"] == "read"
    assert _ack(client, auth, conversation_id, backward, "delivered").json["status"] == "read"

    assert (_status(app, forward).status, _status(app, backward).status) == ("read", "read")


def test_a_message_the_client_has_read_cannot_have_failed(app, client, auth, conversation_id):
    message_id = counsellor_message(app, conversation_id)
    _ack(client, auth, conversation_id, message_id, "read")

    response = _ack(client, auth, conversation_id, message_id, "failed")

    assert response.json["status"] == "read"
    assert _status(app, message_id).status == "read"


def test_failed_is_final(app, client, auth, conversation_id):
    message_id = counsellor_message(app, conversation_id)
    assert _ack(client, auth, conversation_id, message_id, "failed").json["status"] == "failed"

    assert _ack(client, auth, conversation_id, message_id, "delivered").json["status"] == "failed"


def test_each_new_status_is_passed_to_a_helpline_that_wants_acks(app, client, auth,
                                                                 conversation_id):
    message_id = counsellor_message(app, conversation_id)
    for status in ("delivered", "delivered", "read", "delivered"):
        _ack(client, auth, conversation_id, message_id, status)

    with app.app_context():
        acks = db.session.execute(db.select(Delivery).where(Delivery.action == "ack")
                                  .order_by(Delivery.id)).scalars().all()
        assert [(d.message_id, d.params["status"], d.status) for d in acks] == [
            (message_id, "delivered", "pending"), (message_id, "read", "pending")]


def test_a_client_message_cannot_be_acknowledged_by_the_chatbot(app, client, auth,
                                                                 conversation_id):
    sent = client.post(f"/v1/conversations/{conversation_id}/messages",
                       json={"message_id": "from-child", "text": "hi"}, headers=auth)
    assert sent.status_code == 202

    error_of(_ack(client, auth, conversation_id, "from-child", "read"), 404)


def test_an_ack_for_a_closed_conversation_is_still_recorded(app, client, auth, conversation_id):
    message_id = counsellor_message(app, conversation_id)
    client.post(f"/v1/conversations/{conversation_id}/close", headers=auth)

    assert _ack(client, auth, conversation_id, message_id, "read").json["status"] == "read"


# ---- reading a conversation -------------------------------------------------------------

def test_reading_a_conversation_shows_no_text_by_default(app, client, auth, conversation_id):
    counsellor_message(app, conversation_id, text="counsellor words")

    response = client.get(f"/v1/conversations/{conversation_id}", headers=auth)

    assert response.status_code == 200
    out = response.json
    assert (out["conversation_id"], out["state"], out["counsellor"]) == (
        "weni-acks", "active", "counsellor-7")
    assert [(m["direction"], m["status"]) for m in out["messages"]] == [
        ("to_helpline", "accepted"), ("to_client", "accepted")]
    assert all("text" not in m for m in out["messages"])
    assert "counsellor words" not in response.get_data(as_text=True)
    assert "I need to talk to someone" not in response.get_data(as_text=True)


def test_text_needs_a_client_allowed_to_read_it(app, client, auth, conversation_id):
    error_of(client.get(f"/v1/conversations/{conversation_id}?include_text=true",
                        headers=auth), 403, "forbidden")


def test_a_reader_gets_the_text_with_include_text(app, client, conversation_id):
    counsellor_message(app, conversation_id, text="counsellor words")
    owner = {"Authorization": f"Token {make_client(app, 'own-reader', namespace='weni')}"}
    ours = client.get(f"/v1/conversations/{conversation_id}", headers=owner).json["id"]
    reader_key = make_client(app, "auditor", read_text=True, reads_all=True)
    reader = {"Authorization": f"Token {reader_key}"}

    with_text = client.get(f"/v1/conversations/{ours}?include_text=true", headers=reader)
    without = client.get(f"/v1/conversations/{ours}", headers=reader)

    assert [m["text"] for m in with_text.json["messages"]] == [
        "I need to talk to someone", "counsellor words"]
    assert all("text" not in m for m in without.json["messages"])


def test_a_conversation_can_be_read_by_our_id_too(client, auth, conversation_id):
    ours = client.get(f"/v1/conversations/{conversation_id}", headers=auth).json["id"]

    response = client.get(f"/v1/conversations/{ours}", headers=auth)

    assert response.json["conversation_id"] == conversation_id
