"""State changes decided on a fresh, locked read: two racing transitions act once."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import create_engine, text

from adapter.extensions import db
from adapter.models import Delivery


@pytest.mark.parametrize("db_backend", ["postgresql"])  # row locks are PostgreSQL's
def test_a_close_racing_another_close_acts_once(app, client, auth, db_backend):
    started = client.post("/v1/conversations", headers=auth, json={
        "conversation_id": "race-1", "site": "lb", "contact": {"uuid": "c-race"}})
    assert started.status_code == 201
    ours = started.json["id"]
    engine = create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
    answers = []
    try:
        with engine.connect() as other:
            # Another transaction (the relay timing the wait out, say) holds the row...
            other.execute(text("SELECT id FROM conversations WHERE id = :id FOR UPDATE"),
                          {"id": ours})
            closing = threading.Thread(target=lambda: answers.append(client.post(
                "/v1/conversations/race-1/close", headers=auth, json={})))
            closing.start()
            closing.join(timeout=1.0)
            assert closing.is_alive(), "the chatbot's close did not wait for the row lock"
            # ...and closes the conversation itself, then lets go.
            other.execute(text("UPDATE conversations SET state = 'closed', "
                               "closed_by = 'timeout' WHERE id = :id"), {"id": ours})
            other.commit()
        closing.join(timeout=10)
    finally:
        engine.dispose()

    assert answers and answers[0].status_code == 200
    assert answers[0].json["closed_by"] == "timeout"  # the first close stands
    with app.app_context():
        closes = db.session.execute(
            db.select(Delivery).where(Delivery.conversation_id == ours,
                                      Delivery.action == "close")).scalars().all()
        assert closes == []  # the chatbot's close saw it closed: nothing more to tell


def test_a_close_while_the_helpline_is_called_is_not_undone_by_the_delivery(
        app, client, auth):
    """The worker reads the conversation (``requested``), calls the helpline; the chatbot
    closes meanwhile; the worker then records the success. The close must stand, and a
    second close must tell the helpline nothing more (a seen bug: ``waiting`` written
    over ``closed`` reopened it)."""
    from adapter.delivery.performers import record_success
    from adapter.models import Conversation

    started = client.post("/v1/conversations", headers=auth, json={
        "conversation_id": "race-2", "site": "lb", "contact": {"uuid": "c-race-2"}})
    assert started.status_code == 201
    ours = started.json["id"]
    with app.app_context():  # the worker's session, reading before its HTTP call
        opening = db.session.execute(db.select(Delivery).where(
            Delivery.conversation_id == ours, Delivery.action == "open")).scalar_one()
        seen = db.session.get(Conversation, ours)  # held, as prepare() holds it
        assert seen.state == "requested"

        answers = []  # the chatbot's close: another thread, so another session
        closing = threading.Thread(target=lambda: answers.append(client.post(
            "/v1/conversations/race-2/close", headers=auth, json={})))
        closing.start()
        closing.join(timeout=10)
        assert answers and answers[0].status_code == 200

        record_success(opening, None)  # the helpline answered the open
        db.session.commit()

    again = client.post("/v1/conversations/race-2/close", headers=auth, json={})
    assert again.status_code == 200
    with app.app_context():
        assert db.session.get(Conversation, ours).state == "closed"
        closes = db.session.execute(db.select(Delivery).where(
            Delivery.conversation_id == ours, Delivery.action == "close")).scalars().all()
        assert len(closes) == 1


# ---- message statuses: a late write from the worker never undoes the far side's ack ----

def _worker_reads(app, conversation_ref: str, action: str, target: str):
    """What a worker holds before its HTTP call: the claimed delivery and its message, as
    ``preload`` loads them (the status it saw is ``accepted``)."""
    from adapter.delivery.performers import preload
    from adapter.models import Conversation

    conversation = db.session.execute(db.select(Conversation).where(
        (Conversation.external_id == conversation_ref) | (Conversation.id == conversation_ref)
    )).scalar_one()
    delivery = db.session.execute(db.select(Delivery).where(
        Delivery.conversation_id == conversation.id, Delivery.action == action,
        Delivery.target == target)).scalar_one()
    preload([delivery])
    from adapter.delivery.performers import _message

    message = _message(delivery)
    assert message.status == "accepted"
    return conversation, delivery, message


def _in_another_session(work) -> None:
    """``work`` in another thread, so in another session and transaction, to its commit."""
    errors: list[BaseException] = []

    def run():
        try:
            work()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive() and not errors, errors


def _stored_status(app, message_id: str) -> tuple[str, object, object]:
    from adapter.models import Message

    with app.app_context():
        message = db.session.execute(db.select(Message).where(Message.id == message_id)
                                     ).scalar_one()
        return message.status, message.sent_at, message.delivered_at


def test_a_late_sent_does_not_overwrite_the_chatbots_delivered(app, client, auth):
    """The worker reads a counsellor message (``accepted``) and calls RapidPro; the
    chatbot's ack (``delivered``) commits before the worker records its success. The
    worker's ``sent`` must not be written over ``delivered`` (a seen bug: the status was
    decided on the worker's stale read)."""
    from adapter.delivery.performers import forget_preloaded, record_success

    from .conftest import counsellor_message, default_body, start

    start(client, auth, default_body(conversation_id="race-ack"))
    message_id = counsellor_message(app, "race-ack")
    with app.app_context():  # the worker's session, reading before its HTTP call
        _, delivery, message = _worker_reads(app, "race-ack", "message", "chatbot")

        answers = []  # 1. the chatbot's ack, committed first
        _in_another_session(lambda: answers.append(client.post(
            "/v1/conversations/race-ack/acks", headers=auth,
            json={"message_id": message_id, "status": "delivered"})))
        assert answers[0].status_code == 200 and answers[0].json["status"] == "delivered"

        record_success(delivery, None)  # 2. then the worker records RapidPro's 2xx
        db.session.commit()
        assert message.status == "delivered"  # the object shows what stands
        forget_preloaded()

    status, sent_at, delivered_at = _stored_status(app, message_id)
    assert status == "delivered" and sent_at is not None and delivered_at is not None


def test_a_late_outcome_does_not_overwrite_the_helplines_ack(app, client, auth):
    """The same for a client message: the helpline acknowledges it (``read``) while the
    worker still holds ``accepted``; neither the worker's ``sent`` nor a ``failed`` it
    records later (retries exhausted on a lost answer) is written over it."""
    from adapter import protocol
    from adapter.delivery.performers import forget_preloaded, record_failure, record_success
    from adapter.models import Conversation
    from adapter.transactions import commit

    from .conftest import default_body, start

    started = start(client, auth, default_body(conversation_id="race-hl-ack"))
    with app.app_context():
        conversation, delivery, message = _worker_reads(app, "race-hl-ack", "message",
                                                        "helpline")
        message_id = message.id

        def helpline_ack():
            with app.app_context():
                seen = db.session.get(Conversation, started["id"])
                acked = protocol.acknowledge_from_helpline(seen, message_id, "read",
                                                           "helpline:lb")
                commit()
                assert acked.status == "read"

        _in_another_session(helpline_ack)  # 1. the helpline's ack, committed first
        record_success(delivery, None)  # 2. the worker's late "sent"
        db.session.commit()
        record_failure(delivery, "retries exhausted")  # 3. and a late "failed"
        db.session.commit()
        assert message.status == "read"
        forget_preloaded()

    status, _, delivered_at = _stored_status(app, message_id)
    assert status == "read" and delivered_at is not None


def test_failed_then_replayed_becomes_sent_but_failed_never_follows_delivered(app, client,
                                                                               auth):
    """The allowed moves, as written by guarded UPDATEs: ``failed`` from ``accepted``;
    a successful replay supersedes it; ``failed`` is refused once delivered."""
    from adapter import protocol
    from adapter.models import Message

    from .conftest import default_body, start

    start(client, auth, default_body(conversation_id="race-moves"))
    with app.app_context():
        message = db.session.execute(db.select(Message)).scalar_one()
        protocol.message_failed(message, "exhausted")
        db.session.commit()
        assert (message.status, message.failure_reason) == ("failed", "exhausted")
        protocol.message_sent(message, delivered=False)  # the operator's replay got through
        db.session.commit()
        assert (message.status, message.failure_reason) == ("sent", None)
        protocol.message_sent(message, delivered=True)
        protocol.message_failed(message, "late")
        db.session.commit()
        assert (message.status, message.failure_reason) == ("delivered", None)
