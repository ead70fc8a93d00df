"""``POST /api/chat/``: the seed's chats as protocol messages, durable and deduplicated."""

from __future__ import annotations

import pytest

from adapter.dialects.openchs_chat.service import derived_message_ids
from adapter.extensions import db
from adapter.models import Conversation, Delivery, Message
from tests.compat.conftest import login, make_account

SEED_CHAT = {
    "chat_sender": 23343411,
    "chat_receiver": 233432311,
    "chat_message": "This is the message I am sending FROM PSTM",
    "chat_session": "e32434511",
    "chat_source": "WENI",
}


def _messages(app, session: str) -> list[Message]:
    with app.app_context():
        conversation = db.session.execute(
            db.select(Conversation).where(Conversation.external_id == session)).scalar_one()
        return list(db.session.execute(
            db.select(Message).where(Message.conversation_id == conversation.id)
            .order_by(Message.seq)).scalars())


def test_the_seed_chat_starts_a_conversation_at_the_accounts_site(app, client, weni):
    response = client.post("/api/chat/", json=SEED_CHAT, headers=weni)
    assert response.status_code == 201
    assert response.json["status"] == "success"
    with app.app_context():
        conversation = db.session.execute(
            db.select(Conversation).where(Conversation.external_id == "e32434511")).scalar_one()
        assert (conversation.site, conversation.dialect) == ("lb", "openchs_chat")
        # The seed's sender is a phone number: kept as a URN (replies reach it), never as
        # the contact uuid shown to helpline accounts.
        assert (conversation.contact_uuid, conversation.contact_urn) == (None, "tel:23343411")
        actions = db.session.execute(
            db.select(Delivery.action).where(Delivery.conversation_id == conversation.id)
            .order_by(Delivery.id)).scalars().all()
        assert actions == ["open", "message"]
    [message] = _messages(app, "e32434511")
    assert message.id == response.json["uuid"]
    assert message.text == SEED_CHAT["chat_message"]


def test_a_repeated_chat_is_one_message(app, client, weni):
    first = client.post("/api/chat/", json=SEED_CHAT, headers=weni)
    second = client.post("/api/chat/", json=SEED_CHAT, headers=weni)
    assert first.status_code == second.status_code == 201
    assert first.json["uuid"] == second.json["uuid"]
    assert len(_messages(app, "e32434511")) == 1


def test_different_text_in_the_same_session_is_a_second_message(app, client, weni):
    client.post("/api/chat/", json=SEED_CHAT, headers=weni)
    response = client.post("/api/chat/", json={**SEED_CHAT, "chat_message": "are you there?"},
                           headers=weni)
    assert response.status_code == 201
    assert [m.text for m in _messages(app, "e32434511")] == [
        SEED_CHAT["chat_message"], "are you there?"]


def test_a_repeat_across_a_time_bucket_boundary_is_still_caught():
    window = 600
    before = derived_message_ids("c", "s", "hi", window, now=1199.9)
    after = derived_message_ids("c", "s", "hi", window, now=1200.1)
    assert after[0] != before[0]  # a new bucket...
    assert after[1] == before[0]  # ...whose previous-bucket id matches the first post
    assert derived_message_ids("c", "s", "hi!", window, now=1199.9)[0] != before[0]


def test_explicit_message_ids_let_identical_text_through(app, client, weni):
    for message_id in ("m1", "m2", "m1"):
        client.post("/api/chat/", json={**SEED_CHAT, "message_id": message_id}, headers=weni)
    assert [m.sender_message_id for m in _messages(app, "e32434511")] == ["m1", "m2"]


def test_an_idempotency_key_replays_the_first_answer(app, client, weni):
    headers = {**weni, "Idempotency-Key": "k-1"}
    first = client.post("/api/chat/", json=SEED_CHAT, headers=headers)
    second = client.post("/api/chat/", json=SEED_CHAT, headers=headers)
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert first.json == second.json
    assert len(_messages(app, "e32434511")) == 1


def test_sender_and_session_may_be_strings(app, client, weni):
    body = {**SEED_CHAT, "chat_sender": "5e2ab2b1-43b2-4ad9-9a8e-0d3c4f1a2b3c",
            "chat_session": "9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d"}
    assert client.post("/api/chat/", json=body, headers=weni).status_code == 201


def test_missing_and_wrong_fields_are_named(client, weni):
    response = client.post("/api/chat/", json={"chat_sender": True, "chat_source": "SMS"},
                           headers=weni)
    assert response.status_code == 400
    assert response.json["code"] == "invalid_request"
    assert set(response.json["errors"]) == {"chat_sender", "chat_source", "chat_message",
                                            "chat_session"}


def test_an_empty_message_is_refused(client, weni):
    response = client.post("/api/chat/", json={**SEED_CHAT, "chat_message": ""}, headers=weni)
    assert response.status_code == 400
    assert "chat_message" in response.json["errors"]


def test_no_token_is_401(client):
    assert client.post("/api/chat/", json=SEED_CHAT).status_code == 401


def test_a_multi_site_account_must_say_where(app, client):
    make_account(app, name="weni-all", password="pw-all")
    headers = login(client, "weni-all", "pw-all")
    response = client.post("/api/chat/", json=SEED_CHAT, headers=headers)
    assert response.status_code == 422
    assert response.json["code"] == "unroutable" and "site" in response.json["errors"]
    routed = client.post("/api/chat/", json={**SEED_CHAT, "location": "Kampala"},
                         headers=headers)
    assert routed.status_code == 201
    with app.app_context():
        conversation = db.session.execute(db.select(Conversation)).scalar_one()
        assert conversation.site == "ug"


def test_an_unknown_location_is_unroutable(app, client):
    make_account(app, name="weni-all", password="pw-all")
    headers = login(client, "weni-all", "pw-all")
    response = client.post("/api/chat/", json={**SEED_CHAT, "location": "Atlantis"},
                           headers=headers)
    assert response.status_code == 422
    assert "location" in response.json["errors"]


def test_an_account_cannot_start_at_a_site_it_does_not_serve(client, weni):
    response = client.post("/api/chat/", json={**SEED_CHAT, "site": "ug"}, headers=weni)
    assert response.status_code == 403


def helpline_session(client, counsellors) -> str:
    """The session id a helpline account sees for the newest chat: ours."""
    return client.get("/api/chat/", headers=counsellors).json["results"][0]["chat_session"]


def test_a_counsellor_reply_goes_back_to_the_contact(app, client, weni, counsellors):
    client.post("/api/chat/", json=SEED_CHAT, headers=weni)
    session = helpline_session(client, counsellors)
    assert session != "e32434511"
    reply = {"chat_sender": "counsellor-7", "chat_receiver": 23343411,
             "chat_message": "Hello, I am here to help", "chat_session": session,
             "chat_source": "OUTBOX"}
    response = client.post("/api/chat/", json=reply, headers=counsellors)
    assert response.status_code == 201
    again = client.post("/api/chat/", json=reply, headers=counsellors)
    assert again.json["uuid"] == response.json["uuid"]
    messages = _messages(app, "e32434511")
    assert [(m.direction, m.sender) for m in messages] == [
        ("to_helpline", messages[0].sender), ("to_client", "counsellor-7")]
    with app.app_context():
        targets = db.session.execute(
            db.select(Delivery.target, Delivery.action)
            .where(Delivery.message_id == response.json["uuid"])).all()
        assert [tuple(t) for t in targets] == [("chatbot", "message")]


@pytest.mark.parametrize("source", ["OUTBOX", "HELPLINE"])
def test_a_chatbot_account_cannot_speak_for_the_counsellor(client, weni, source):
    client.post("/api/chat/", json=SEED_CHAT, headers=weni)
    response = client.post("/api/chat/", json={**SEED_CHAT, "chat_source": source},
                           headers=weni)
    assert response.status_code == 403
    assert "chat_source" in response.json["errors"]


def test_a_helpline_account_cannot_speak_for_the_client(client, counsellors):
    response = client.post("/api/chat/", json=SEED_CHAT, headers=counsellors)
    assert response.status_code == 403


def test_a_counsellor_message_to_an_unknown_session_is_404(client, counsellors):
    response = client.post("/api/chat/", json={**SEED_CHAT, "chat_source": "OUTBOX"},
                           headers=counsellors)
    assert response.status_code == 404
    assert "chat_session" in response.json["errors"]


def test_a_chat_to_a_closed_session_is_409(client, weni):
    client.post("/api/chat/", json=SEED_CHAT, headers=weni)
    client.post("/api/chat/e32434511/close/", json={"chat_source": "WENI"}, headers=weni)
    response = client.post("/api/chat/", json={**SEED_CHAT, "chat_message": "hello?"},
                           headers=weni)
    assert response.status_code == 409
