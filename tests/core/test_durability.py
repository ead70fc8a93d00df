"""Nothing lost: by the time we answer 2xx, the change and its delivery are committed
together (the transactional outbox)."""

from __future__ import annotations

from sqlalchemy import create_engine, text

from .conftest import default_body, start


def _committed(app, sql: str, **params) -> list[tuple]:
    """Read through a connection of its own: only what was committed is visible."""
    engine = create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql), params)]
    finally:
        engine.dispose()


def test_an_accepted_start_is_committed_with_its_open_delivery(app, client, auth):
    out = start(client, auth, default_body(conversation_id="durable-1"))

    assert _committed(app, "SELECT state FROM conversations WHERE id = :id", id=out["id"]) == [
        ("requested",)]
    assert _committed(app, "SELECT target, action, status FROM deliveries "
                           "WHERE conversation_id = :id ORDER BY id", id=out["id"]) == [
        ("helpline", "open", "pending"), ("helpline", "message", "pending")]


def test_an_accepted_message_is_committed_with_its_pending_delivery(app, client, auth):
    cid = start(client, auth, {"site": "lb", "conversation_id": "durable-2"})["conversation_id"]

    response = client.post(f"/v1/conversations/{cid}/messages",
                           json={"message_id": "m-durable", "text": "hello"}, headers=auth)

    assert response.status_code == 202
    message_id = response.json["message_id"]
    assert _committed(app, "SELECT status, sender_message_id FROM messages WHERE id = :id",
                      id=message_id) == [("accepted", "m-durable")]
    assert _committed(app, "SELECT target, action, status FROM deliveries "
                           "WHERE message_id = :id", id=message_id) == [
        ("helpline", "message", "pending")]


def test_a_close_is_committed_with_its_delivery(app, client, auth):
    out = start(client, auth, {"site": "lb", "conversation_id": "durable-3"})

    assert client.post("/v1/conversations/durable-3/close", headers=auth).status_code == 200

    assert _committed(app, "SELECT state, closed_by FROM conversations WHERE id = :id",
                      id=out["id"]) == [("closed", "client")]
    assert _committed(app, "SELECT status FROM deliveries WHERE conversation_id = :id "
                           "AND action = 'close'", id=out["id"]) == [("pending",)]


def test_a_refused_request_leaves_nothing_behind(app, client, auth):
    client.post("/v1/conversations/durable-4/messages", json={"text": "x"}, headers=auth)
    client.post("/v1/conversations", json={"site": "nowhere"}, headers=auth)

    assert _committed(app, "SELECT count(*) FROM deliveries") == [(0,)]
    assert _committed(app, "SELECT count(*) FROM conversations") == [(0,)]
