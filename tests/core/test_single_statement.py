"""An accepted client message on PostgreSQL: one INSERT that commits as it runs, with no
BEGIN or COMMIT round trip, still durable before the 202, and nothing else let out of
its transaction."""

from __future__ import annotations

import pytest
from sqlalchemy import event, text

from adapter import create_app
from adapter.extensions import db
from adapter.models import Conversation
from adapter.transactions import single_statement_writes
from tests.conftest import make_client
from tests.support import loopback_plugin

from .conftest import counts, start
from .test_durability import _committed
from .test_errors import error_of

pytestmark = pytest.mark.parametrize("db_backend", ["postgresql"])  # PostgreSQL's autocommit


def _inserts_in_autocommit(app) -> tuple[list[bool], object]:
    """For each INSERT ``app`` sends, whether its connection was in autocommit."""
    seen: list[bool] = []

    def note(conn, _cursor, statement, *_args):
        if statement.lstrip().startswith(("INSERT", "WITH")):
            seen.append(conn.connection.dbapi_connection.autocommit)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", note)
    return seen, lambda: event.remove(engine, "before_cursor_execute", note)


def test_an_accepted_message_is_one_statement_committed_before_the_answer(
        app, client, auth, db_backend):
    cid = start(client, auth, {"site": "lb", "conversation_id": "one"})["conversation_id"]
    seen, stop = _inserts_in_autocommit(app)
    try:
        response = client.post(f"/v1/conversations/{cid}/messages",
                               json={"message_id": "m-1", "text": "hello"}, headers=auth)
    finally:
        stop()

    assert response.status_code == 202
    assert seen == [True]  # message and delivery: one statement, no BEGIN, no COMMIT
    message_id = response.json["message_id"]
    assert _committed(app, "SELECT d.action, d.status FROM deliveries d JOIN messages m "
                           "ON m.id = d.message_id WHERE m.id = :id", id=message_id) == [
        ("message", "pending")]
    with app.app_context(), db.engine.connect() as conn:
        assert conn.connection.dbapi_connection.autocommit is False  # not left on the pool


def test_with_an_idempotency_key_the_message_and_its_record_share_a_transaction(
        app, client, auth, db_backend):
    cid = start(client, auth, {"site": "lb", "conversation_id": "keyed"})["conversation_id"]
    seen, stop = _inserts_in_autocommit(app)
    try:
        response = client.post(f"/v1/conversations/{cid}/messages", json={"text": "hello"},
                               headers={**auth, "Idempotency-Key": "k-1"})
    finally:
        stop()

    assert response.status_code == 202
    assert seen and not any(seen)
    assert counts(app)["idempotency_records"] == 1


def test_a_second_write_inside_is_refused_and_nothing_is_written(app, db_backend):
    with app.app_context(), single_statement_writes():
        db.session.add(Conversation(external_id="sneaked-in", site="lb", client_pseudonym="p"))
        with pytest.raises(RuntimeError, match="single_statement_writes"):
            db.session.flush()
        db.session.rollback()

    assert counts(app)["conversations"] == 0


def test_a_message_the_database_will_not_write_is_503_and_leaves_nothing(
        app_factory, db_backend):
    writable = app_factory()
    auth = {"Authorization": f"Token {make_client(writable)}"}
    cid = start(writable.test_client(), auth, {"site": "lb", "conversation_id": "ro"})[
        "conversation_id"]
    before = counts(writable)
    read_only = create_app({**writable.config, "SQLALCHEMY_ENGINE_OPTIONS": {
        "hide_parameters": True,
        "connect_args": {"options": "-c default_transaction_read_only=on"}}},
        plugins=(loopback_plugin,))

    response = read_only.test_client().post(f"/v1/conversations/{cid}/messages",
                                            json={"message_id": "m", "text": "hi"},
                                            headers=auth)

    error_of(response, 503, "unavailable")
    assert counts(writable) == before
    with read_only.app_context():
        assert db.session.execute(text("SHOW default_transaction_read_only")).scalar() == "on"
        db.session.rollback()
        db.engine.dispose()
