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
