"""A repeated start, message, close, ack or Idempotency-Key request changes nothing the
second time and answers with the first result."""

from __future__ import annotations

from adapter.extensions import db
from adapter.models import Delivery

from .conftest import counsellor_message, counts, default_body, start


def test_a_repeated_start_with_the_same_conversation_id(app, client, auth):
    body = default_body(conversation_id="weni-1")
    first = start(client, auth, body)
    before = counts(app)

    again = start(client, auth, body, expect=200)

    assert again == first
    assert counts(app) == before


def test_a_repeated_start_with_another_first_message_still_starts_nothing(app, client, auth):
    start(client, auth, default_body(conversation_id="weni-2"))
    before = counts(app)

    start(client, auth, default_body(conversation_id="weni-2", text="different words"),
          expect=200)

    assert counts(app) == before


def test_a_repeated_message_with_the_same_message_id(app, client, auth):
    cid = start(client, auth, default_body(conversation_id="weni-3"))["conversation_id"]
    url = f"/v1/conversations/{cid}/messages"
    first = client.post(url, json={"message_id": "m-1", "text": "hello"}, headers=auth)
    assert first.status_code == 202
    before = counts(app)

    again = client.post(url, json={"message_id": "m-1", "text": "hello"}, headers=auth)

    assert again.status_code == 200
    assert again.json == first.json
    assert counts(app) == before


def test_a_repeated_message_after_the_close_answers_the_first_result_not_409(app, client, auth):
    cid = start(client, auth, default_body(conversation_id="weni-4"))["conversation_id"]
    url = f"/v1/conversations/{cid}/messages"
    first = client.post(url, json={"message_id": "m-1", "text": "hello"}, headers=auth)
    client.post(f"/v1/conversations/{cid}/close", headers=auth)

    again = client.post(url, json={"message_id": "m-1", "text": "hello"}, headers=auth)

    assert (again.status_code, again.json) == (200, first.json)


def test_a_repeated_close(app, client, auth):
    cid = start(client, auth, default_body(conversation_id="weni-5"))["conversation_id"]
    first = client.post(f"/v1/conversations/{cid}/close", json={"reason": "resolved"},
                        headers=auth)
    assert first.status_code == 200 and first.json["state"] == "closed"
    before = counts(app)

    again = client.post(f"/v1/conversations/{cid}/close", json={"reason": "resolved"},
                        headers=auth)

    assert again.status_code == 200
    assert again.json == first.json
    assert counts(app) == before
    with app.app_context():
        closes = db.session.execute(db.select(Delivery).where(
            Delivery.action == "close")).scalars().all()
    assert len(closes) == 1


def test_a_repeated_ack(app, client, auth):
    cid = start(client, auth, default_body(conversation_id="weni-6"))["conversation_id"]
    message_id = counsellor_message(app, cid)
    url = f"/v1/conversations/{cid}/acks"
    assert client.post(url, json={"message_id": message_id, "status": "read"},
                       headers=auth).status_code == 200
    before = counts(app)

    again = client.post(url, json={"message_id": message_id, "status": "read"}, headers=auth)

    assert again.status_code == 200
    assert counts(app) == before


def test_an_idempotency_key_replays_the_first_answer(app, client, auth):
    headers = {"Idempotency-Key": "9c1d2e3f-start"}
    first = start(client, auth, default_body(), headers=headers)
    before = counts(app)

    again = client.post("/v1/conversations", json=default_body(), headers={**auth, **headers})

    assert again.status_code == 201
    assert again.json == first
    assert again.headers["Idempotent-Replayed"] == "true"
    assert counts(app) == before


def test_an_idempotency_key_makes_a_message_without_an_id_happen_once(app, client, auth):
    cid = start(client, auth, default_body(conversation_id="weni-7"))["conversation_id"]
    url = f"/v1/conversations/{cid}/messages"
    headers = {**auth, "Idempotency-Key": "rapidpro-retry-1"}
    first = client.post(url, json={"text": "no id here"}, headers=headers)
    assert first.status_code == 202
    before = counts(app)

    again = client.post(url, json={"text": "no id here"}, headers=headers)

    assert (again.status_code, again.json) == (202, first.json)
    assert counts(app) == before


def test_another_idempotency_key_is_another_start(app, client, auth):
    first = start(client, auth, {"site": "lb"}, headers={"Idempotency-Key": "key-a"})
    second = start(client, auth, {"site": "lb"}, headers={"Idempotency-Key": "key-b"})

    assert first["conversation_id"] != second["conversation_id"]
    assert counts(app)["conversations"] == 2
