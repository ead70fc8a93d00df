"""The weni-ticketer dialect's routes, over HTTP, against the contract's own examples.

Every route and every error of ``/v1/tickets`` is compared field by field with the
contract document's examples and field lists (``weni_contract``), on SQLite and
PostgreSQL.
"""

from __future__ import annotations

import json
import logging
import re

import pytest

from adapter.extensions import db
from adapter.models import AuditEvent, Conversation, Delivery, IdempotencyRecord, Message
from tests.conftest import make_client

from . import weni_contract as contract
from .conftest import NO_REOPEN_TOPIC, OTHER_TOPIC

RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
CALLBACK_BASE = "https://mailroom.example/mr/tickets/types/generic/event_callback/6a1f2c3d"


def open_ticket(client, headers, *, key: str | None = "default", **changes):
    body = contract.body(contract.OPEN_BODY, **changes)
    body["metadata"] = {**body["metadata"], "webhook_base_url": CALLBACK_BASE}
    sent = dict(headers)
    if key:
        sent["Idempotency-Key"] = (f"open-{body['ticket_id']}" if key == "default" else key)
    return client.post("/v1/tickets", json=body, headers=sent)


def error_of(response, expected: dict) -> dict:
    """The contract's error envelope: ``{error, message[, details]}`` and nothing else."""
    assert response.status_code == expected["status"], response.json
    body = response.json
    assert body["error"] == expected["error"]
    assert isinstance(body["message"], str) and body["message"]
    assert set(body) <= {"error", "message", "details"}
    if "details" in expected:
        assert set(body["details"]) == expected["details"]
    return body


def stored(app, model, **where):
    with app.app_context():
        return db.session.execute(db.select(model).filter_by(**where)).scalars().all()


def everything_stored(app) -> str:
    """Every row of the tables a conversation writes, as text."""
    with app.app_context():
        rows = []
        for model in (Conversation, Message, Delivery, AuditEvent, IdempotencyRecord):
            for row in db.session.execute(db.select(model)).scalars():
                rows.append(json.dumps({c.key: getattr(row, c.key)
                                        for c in model.__table__.columns}, default=str))
        return "\n".join(rows)


# ---- open (§2.1) ------------------------------------------------------------------------

def test_open_answers_the_contract_and_keeps_no_name_or_number(weni_app, weni, caplog):
    client, headers = weni
    caplog.set_level(logging.INFO)
    response = open_ticket(client, headers)

    assert response.status_code == 201
    assert set(response.json) == contract.OPEN_ANSWER_FIELDS
    assert response.json["status"] == contract.OPEN_ANSWER_STATUS
    assert RFC3339_UTC.match(response.json["created_at"])
    external_id = response.json["external_id"]
    [conversation] = stored(weni_app, Conversation)
    assert conversation.id == external_id  # our conversation id
    assert conversation.external_id == contract.TICKET_ID
    assert (conversation.dialect, conversation.site, conversation.state) == (
        "weni_ticketer", "ke", "requested")
    assert conversation.chatbot_callback_url == CALLBACK_BASE
    assert conversation.contact_uuid == contract.CONTACT_UUID
    assert conversation.contact_urn is None
    assert conversation.client_pseudonym.startswith("client-")
    # The ticket's body reaches the counsellor as the first message; the open goes first.
    [message] = stored(weni_app, Message)
    assert message.text == contract.OPEN_BODY["body"]
    assert [(d.target, d.action) for d in stored(weni_app, Delivery)] == [
        ("helpline", "open"), ("helpline", "message")]
    # Nothing of the child's name, number or the assignee is kept or logged.
    logged = "\n".join(json.dumps(r.__dict__, default=str) for r in caplog.records)
    for secret in (contract.PHONE, contract.CONTACT_NAME, "maria@example.com", "Maria Agent"):
        assert secret not in everything_stored(weni_app)
        assert secret not in logged
    assert contract.OPEN_HEADERS["X-Request-Id"] in logged  # ids are logged


def test_the_same_idempotency_key_replays_the_first_answer(weni_app, weni):
    client, headers = weni
    first = open_ticket(client, headers)
    again = open_ticket(client, headers)
    assert again.status_code == 201
    assert again.json == first.json
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(stored(weni_app, Conversation)) == 1


def test_a_second_open_of_an_open_ticket_is_409_with_its_external_id(weni_app, weni):
    client, headers = weni
    first = open_ticket(client, headers)
    again = open_ticket(client, headers, key="open-another-attempt")
    body = error_of(again, contract.ALREADY_OPEN)
    assert body["details"]["external_id"] == first.json["external_id"]
    assert len(stored(weni_app, Conversation)) == 1


def test_routing_by_queue_then_topic_then_location_and_urn(weni_app, weni):
    client, headers = weni
    by_queue = open_ticket(client, headers, ticket_id="t-queue",
                           topic={"uuid": OTHER_TOPIC, "queue_uuid": contract.QUEUE})
    by_topic = open_ticket(client, headers, ticket_id="t-topic", topic={"uuid": OTHER_TOPIC})
    by_location = open_ticket(client, headers, ticket_id="t-location", topic=None,
                              body=json.dumps({"location": "Kampala", "risk": "high"}))
    by_urn = open_ticket(client, headers, ticket_id="t-urn", topic=None,
                         contact={"uuid": "c-urn", "urn": "tel:+254700000001"})
    no_uuid = open_ticket(client, headers, ticket_id="t-no-uuid", topic=None,
                          contact={"urn": "tel:+254700000002"})
    sites = {c.external_id: c.site for c in stored(weni_app, Conversation)}
    assert [r.status_code for r in (by_queue, by_topic, by_location, by_urn, no_uuid)] == [
        201] * 5
    assert sites == {"t-queue": "ke", "t-topic": "ug", "t-location": "ug", "t-urn": "ke",
                     "t-no-uuid": "ke"}
    # The URN routed; it is kept nowhere, even without a contact uuid.
    assert {c.contact_urn for c in stored(weni_app, Conversation)} == {None}
    assert "254700000002" not in everything_stored(weni_app)
    [located] = stored(weni_app, Conversation, external_id="t-location")
    assert located.risk == "high"


def test_unroutable_is_422_in_the_contracts_shape(weni_app, weni):
    client, headers = weni
    response = open_ticket(client, headers, topic={"uuid": "ffffffff-0000-4000-8000-000000000000"},
                           contact={"uuid": "c-1", "urn": "whatsapp:+15550000000"})
    body = error_of(response, {"status": 422, "error": "unroutable"})
    assert "topic" in body["message"]
    # A site without [chatbot.weni] is never chosen (it could not be called back).
    kigali = open_ticket(client, headers, ticket_id="t-kigali", topic=None,
                         contact={"uuid": "c-2", "urn": "tel:+250700000000"})
    error_of(kigali, {"status": 422, "error": "unroutable"})
    assert stored(weni_app, Conversation) == []


def test_an_invalid_open_is_400_invalid_payload_naming_the_fields(weni):
    client, headers = weni
    body = contract.body(contract.OPEN_BODY)
    del body["ticket_id"]
    response = client.post("/v1/tickets", json=body, headers=headers)
    answer = error_of(response, {**contract.INVALID, "details": {"fields"}})
    assert "ticket_id" in answer["details"]["fields"]
    bad_base = contract.body(contract.OPEN_BODY, metadata={"webhook_base_url": "ftp://x"})
    answer = error_of(client.post("/v1/tickets", json=bad_base, headers=headers),
                      contract.INVALID)
    assert "metadata.webhook_base_url" in answer["details"]["fields"]


def test_auth_version_and_media_type_errors_are_in_the_contracts_shape(weni_app, weni):
    client, headers = weni
    body = contract.OPEN_BODY
    error_of(client.post("/v1/tickets", json=body), {"status": 401, "error": "unauthorized"})
    error_of(client.post("/v1/tickets", json=body,
                         headers={**headers, "Authorization": "Bearer nope"}),
             {"status": 401, "error": "unauthorized"})
    error_of(client.post("/v1/tickets", json=body, headers={**headers, "X-API-Version": "2"}),
             {"status": 400, "error": "unsupported_api_version"})
    error_of(client.post("/v1/tickets", data="x", headers={**headers,
                                                            "Content-Type": "text/plain"}),
             {"status": 415, "error": "unsupported_media_type"})
    error_of(client.post("/v1/tickets", data="{", headers={**headers,
                                                            "Content-Type": "application/json"}),
             contract.INVALID)
    helpline_key = make_client(weni_app, name="a-helpline", role="helpline")
    error_of(client.post("/v1/tickets", json=body,
                         headers={**headers, "Authorization": f"Bearer {helpline_key}"}),
             {"status": 403, "error": "forbidden"})
    limited = make_client(weni_app, name="ug-only", sites=["ug"])
    error_of(open_ticket(client, {**headers, "Authorization": f"Bearer {limited}"}),
             {"status": 403, "error": "forbidden"})
    assert stored(weni_app, Conversation) == []


# ---- forward (§2.2) ---------------------------------------------------------------------

def test_forward_answers_the_contract_and_dedupes_by_message_id(weni_app, weni):
    client, headers = weni
    external_id = open_ticket(client, headers).json["external_id"]
    body = contract.body(contract.FORWARD_BODY, external_id=external_id)
    path = f"/v1/tickets/{external_id}/messages"
    first = client.post(path, json=body, headers={**headers, "Idempotency-Key": "forward-msg-789"})
    assert first.status_code == 200
    assert set(first.json) == contract.FORWARD_ANSWER_FIELDS
    assert first.json["status"] == contract.FORWARD_ANSWER["status"]
    again = client.post(path, json=body, headers=headers)  # no key: the message id dedupes
    assert again.status_code == 200
    assert again.json["message_external_id"] == first.json["message_external_id"]
    [message] = stored(weni_app, Message, sender_message_id="msg-789")
    assert message.id == first.json["message_external_id"]
    assert message.text == contract.FORWARD_BODY["text"]
    assert message.attachments == ["image/jpeg:https://example.com/files/image.jpg"]
    assert contract.CONTACT_NAME not in everything_stored(weni_app)
    assert [d.action for d in stored(weni_app, Delivery, message_id=message.id)] == ["message"]


def test_forward_errors(weni_app, weni):
    client, headers = weni
    external_id = open_ticket(client, headers).json["external_id"]
    path = f"/v1/tickets/{external_id}/messages"
    empty = contract.body(contract.FORWARD_BODY, text="", attachments=[], message_id="m-empty")
    error_of(client.post(path, json=empty, headers=headers),
             {"status": 400, "error": "empty_message"})
    bad = contract.body(contract.FORWARD_BODY, attachments=[{"url": "javascript:alert(1)"}])
    answer = error_of(client.post(path, json=bad, headers=headers), contract.INVALID)
    assert "attachments.0.url" in answer["details"]["fields"]
    error_of(client.post("/v1/tickets/no-such-ticket/messages", json=contract.FORWARD_BODY,
                         headers=headers), {"status": 404, "error": "ticket_not_found"})
    # Another workspace's client cannot name this ticket.
    other = make_client(weni_app, name="other-workspace")
    error_of(client.post(path, json=contract.FORWARD_BODY,
                         headers={**headers, "Authorization": f"Bearer {other}"}),
             {"status": 404, "error": "ticket_not_found"})
    assert client.post(f"/v1/tickets/{external_id}/close", json=contract.CLOSE_BODY,
                       headers=headers).status_code == 200
    error_of(client.post(path, json=contract.body(contract.FORWARD_BODY, message_id="late"),
                         headers=headers), {"status": 409, "error": "ticket_closed"})


# ---- close (§2.3) and reopen (§2.4) ------------------------------------------------------

@pytest.mark.parametrize("closed_by", contract.CLOSED_BY_TYPES)
def test_close_answers_the_contract_then_409_already_closed(weni_app, weni, closed_by):
    client, headers = weni
    external_id = open_ticket(client, headers).json["external_id"]
    body = contract.body(contract.CLOSE_BODY, external_id=external_id,
                         closed_by={"type": closed_by, "id": "x"})
    path = f"/v1/tickets/{external_id}/close"
    first = client.post(path, json=body, headers={**headers, "Idempotency-Key": "close-t-1"})
    assert first.status_code == 200
    assert first.json["status"] == contract.CLOSE_ANSWER["status"]
    assert first.json["external_id"] == external_id
    # The platform's close key changes on every attempt: a close is deduped by ticket.
    error_of(client.post(path, json=body, headers={**headers, "Idempotency-Key": "close-t-2"}),
             contract.ALREADY_CLOSED)
    [conversation] = stored(weni_app, Conversation)
    assert (conversation.state, conversation.closed_by, conversation.close_reason) == (
        "closed", "client", "resolved")
    assert [d.action for d in stored(weni_app, Delivery, target="helpline")] == [
        "open", "message", "close"]


def test_a_platform_close_without_reason_as_mailroom_sends_it(weni_app, weni):
    client, headers = weni
    external_id = open_ticket(client, headers).json["external_id"]
    body = {"ticket_id": contract.TICKET_ID, "external_id": external_id,
            "closed_by": {"type": "platform", "id": "system"},
            "closed_at": "2026-05-20T14:50:00.123456789Z"}
    response = client.post(f"/v1/tickets/{external_id}/close", json=body, headers=headers)
    assert response.status_code == 200
    error_of(client.post(f"/v1/tickets/{external_id}/close", json={**body, "reason": "bogus"},
                         headers=headers), contract.INVALID)


def test_reopen_answers_the_contract_and_opens_at_the_helpline_again(weni_app, weni):
    client, headers = weni
    external_id = open_ticket(client, headers).json["external_id"]
    path = f"/v1/tickets/{external_id}"
    closed = client.post(f"{path}/close", json=contract.CLOSE_BODY, headers=headers)
    assert closed.status_code == 200
    body = contract.body(contract.REOPEN_BODY, external_id=external_id)
    response = client.post(f"{path}/reopen", json=body, headers=headers)
    assert response.status_code == 200
    assert response.json["status"] == contract.REOPEN_ANSWER["status"]
    [conversation] = stored(weni_app, Conversation)
    assert conversation.state == "requested" and conversation.closed_at is None
    assert [d.action for d in stored(weni_app, Delivery, target="helpline")] == [
        "open", "message", "close", "open"]
    # Open already: the same answer, nothing more.
    again = client.post(f"{path}/reopen", json=body, headers=headers)
    assert again.status_code == 200 and again.json["status"] == "open"
    assert len(stored(weni_app, Delivery, target="helpline")) == 4
    # And it takes messages again.
    forward = contract.body(contract.FORWARD_BODY, message_id="after-reopen")
    assert client.post(f"{path}/messages", json=forward, headers=headers).status_code == 200
    error_of(client.post("/v1/tickets/nope/reopen", json=body, headers=headers),
             {"status": 404, "error": "ticket_not_found"})


def test_a_site_that_cannot_reopen_answers_reopen_not_supported(weni_app, weni):
    client, headers = weni
    external_id = open_ticket(client, headers, topic={"uuid": NO_REOPEN_TOPIC}).json["external_id"]
    path = f"/v1/tickets/{external_id}"
    closed = client.post(f"{path}/close", json=contract.CLOSE_BODY, headers=headers)
    assert closed.status_code == 200
    error_of(client.post(f"{path}/reopen", json=contract.REOPEN_BODY, headers=headers),
             contract.REOPEN_NOT_SUPPORTED)
    [conversation] = stored(weni_app, Conversation)
    assert conversation.state == "closed"


# ---- history (§2.5) ---------------------------------------------------------------------

def test_history_is_kept_in_sent_at_order_labelled_and_pseudonymised(weni_app, weni):
    client, headers = weni
    external_id = open_ticket(client, headers).json["external_id"]
    # A message forwarded live before the history arrives (the platform queues history).
    live = contract.body(contract.FORWARD_BODY, message_id="msg-003", attachments=[],
                         text="are you there?")
    assert client.post(f"/v1/tickets/{external_id}/messages", json=live,
                       headers=headers).status_code == 200
    body = contract.body(contract.HISTORY_BODY, external_id=external_id)
    body["messages"] = list(reversed(body["messages"]))  # out of order
    key = {"Idempotency-Key": f"history-{contract.TICKET_ID}-0"}
    response = client.post(f"/v1/tickets/{external_id}/history", json=body,
                           headers={**headers, **key})
    assert response.status_code == 200
    assert response.json == contract.HISTORY_ANSWER
    with weni_app.app_context():
        texts = [m.text for m in db.session.execute(
            db.select(Message).order_by(Message.seq)).scalars()]
    assert texts == [contract.OPEN_BODY["body"], "are you there?",
                     "[earlier 2026-05-20 14:20 UTC, bot] Hi! How can I help?",
                     "[earlier 2026-05-20 14:21 UTC, child] I want to talk to an agent."]
    # The task is retried from the first batch: a repeat adds nothing.
    again = client.post(f"/v1/tickets/{external_id}/history", json=body,
                        headers={**headers, **key})
    assert again.json == response.json
    again = client.post(f"/v1/tickets/{external_id}/history", json=body, headers=headers)
    assert again.status_code == 200
    assert len(stored(weni_app, Message)) == 4
    assert contract.PHONE not in everything_stored(weni_app)


def test_history_one_by_one_arrives_at_the_forward_route(weni_app, weni):
    client, headers = weni
    external_id = open_ticket(client, headers).json["external_id"]
    bot = {"ticket_id": contract.TICKET_ID, "external_id": external_id, "message_id": "h-1",
           "direction": "outgoing", "sender": {"type": "bot"}, "text": "Hello from the bot",
           "sent_at": "2026-05-20T14:20:00Z"}
    response = client.post(f"/v1/tickets/{external_id}/messages", json=bot,
                           headers={**headers, "Idempotency-Key": "history-t-h-1"})
    assert response.status_code == 200
    [message] = stored(weni_app, Message, sender_message_id="h-1")
    assert message.text == "[earlier 2026-05-20 14:20 UTC, bot] Hello from the bot"


def test_history_errors(weni_app, weni):
    client, headers = weni
    external_id = open_ticket(client, headers).json["external_id"]
    answer = error_of(client.post(f"/v1/tickets/{external_id}/history", json={"messages": 1},
                                  headers=headers), contract.INVALID)
    assert "messages" in answer["details"]["fields"]
    error_of(client.post("/v1/tickets/nope/history", json=contract.HISTORY_BODY,
                         headers=headers), {"status": 404, "error": "ticket_not_found"})


# ---- a site's [attachments] limits ---------------------------------------------------

def test_a_refused_attachment_is_a_422_in_the_contracts_envelope_and_the_text_is_kept(
        weni_app, weni):
    """tz takes images only: the video is named, the text and the image are received."""
    client, headers = weni
    external_id = open_ticket(client, headers, topic={"uuid": NO_REOPEN_TOPIC}).json["external_id"]
    path = f"/v1/tickets/{external_id}/messages"
    body = contract.body(contract.FORWARD_BODY, message_id="msg-video", attachments=[
        {"url": "https://example.com/files/clip.mp4", "content_type": "video/mp4"},
        {"url": "https://example.com/files/image.jpg", "content_type": "image/jpeg"}])

    first = client.post(path, json=body, headers=headers)
    answer = error_of(first, {"status": 422, "error": "attachments_refused",
                              "details": {"fields", "message_external_id", "status"}})
    assert answer["details"]["fields"] == {
        "attachments.0": ["content type video/mp4 is not accepted at this site"]}
    [message] = stored(weni_app, Message, sender_message_id="msg-video")
    assert answer["details"]["message_external_id"] == message.id
    assert message.text == contract.FORWARD_BODY["text"]
    assert message.attachments == ["image/jpeg:https://example.com/files/image.jpg"]
    again = client.post(path, json=body, headers=headers)
    assert (again.status_code, again.json) == (422, first.json)
    assert len(stored(weni_app, Message, sender_message_id="msg-video")) == 1


def test_history_keeps_its_messages_and_names_the_refused_attachments(weni_app, weni):
    client, headers = weni
    external_id = open_ticket(client, headers, topic={"uuid": NO_REOPEN_TOPIC}).json["external_id"]
    history = {"ticket_id": contract.TICKET_ID, "external_id": external_id, "messages": [
        {"message_id": "h-1", "direction": "incoming", "text": "earlier words",
         "attachments": [{"url": "https://example.com/a.pdf", "content_type": "application/pdf"}],
         "sent_at": "2026-05-20T14:30:00Z"}]}
    response = client.post(f"/v1/tickets/{external_id}/history", json=history, headers=headers)

    assert response.status_code == 200, response.json
    assert response.json["messages_received"] == 1
    assert response.json["attachments_refused"] == {
        "messages.0.attachments.0": ["content type application/pdf is not accepted at this site"]}
    [message] = stored(weni_app, Message, sender_message_id="h-1")
    assert message.attachments is None
