"""The seed's curl requests, as written (hosts aside), against a running adapter.

gunicorn (mounted at ``/open`` like the seed's URLs) takes the requests, the worker
delivers over HTTP to the sandbox OpenCHS helpline, counsellor replies come back
through the helpline's callbacks and go to the sandbox RapidPro as broadcasts to the
contact the seed sent as ``chat_sender``. Then the incumbent's measured failures:
helpline down, a repeated post, a hyphenated session id.
"""

from __future__ import annotations

import json
import subprocess

import pytest
import requests
from sqlalchemy import text

from tests.compat.conftest import SEED_PASSWORD, SEED_USERNAME

pytestmark = pytest.mark.integration

SEED_CHAT = {
    "chat_sender": 23343411,
    "chat_receiver": 233432311,
    "chat_message": "This is the message I am sending FROM PSTM",
    "chat_session": "e32434511",
    "chat_source": "WENI",
}


def curl(*args: str) -> tuple[int, dict]:
    """Run curl as the seed does; the HTTP status and the JSON answer."""
    result = subprocess.run(["curl", "--silent", "--show-error", "--write-out", "\n%{http_code}",
                             *args], capture_output=True, text=True, timeout=30, check=True)
    body, _, status = result.stdout.rpartition("\n")
    return int(status), json.loads(body) if body else {}


def seed_token(base: str) -> str:
    status, body = curl(
        "--location", "--request", "POST", f"{base}/api/token/",
        "--header", "Content-Type: application/json",
        "--data-raw", '{\n  "username":"child@openchs.com",\n  "password":"0p3nCh1ld"\n}')
    assert status == 200, body
    return body["token"]


def seed_list(base: str, token: str) -> tuple[int, dict]:
    return curl("--location", "--request", "GET", f"{base}/api/chat/",
                "--header", "Content-Type: application/json",
                "--header", f"Authorization: Token {token}")


def seed_send(base: str, token: str, body: dict | None = None) -> tuple[int, dict]:
    raw = json.dumps(body or SEED_CHAT, indent=2)
    return curl("--location", "--request", "POST", f"{base}/api/chat/",
                "--header", "Content-Type: application/json",
                "--header", f"Authorization: Token {token}",
                "--data-raw", raw)


def seed_close(base: str, token: str, session: str) -> tuple[int, dict]:
    """The seed's close: no Content-Type header (curl then says it is a form)."""
    return curl("--location", "--request", "POST", f"{base}/api/chat/{session}/close/",
                "--header", f"Authorization: Token {token}",
                "--data-raw", '{\n  "chat_source": "WENI"\n}')


def our_id(stack, session: str) -> str:
    with stack.engine.connect() as conn:
        return conn.execute(text("SELECT id FROM conversations WHERE external_id = :s"),
                            {"s": session}).scalar_one()


def test_the_seeds_token_list_send_and_close_work_and_the_chat_reaches_the_helpline(seed):
    assert SEED_USERNAME == "child@openchs.com" and SEED_PASSWORD == "0p3nCh1ld"
    stack = seed.stack
    token = seed_token(seed.base)

    status, listed = seed_list(seed.base, token)
    assert (status, listed["count"], listed["results"]) == (200, 0, [])

    status, sent = seed_send(seed.base, token)
    assert (status, sent["status"]) == (201, "success")
    session = our_id(stack, "e32434511")
    [arrived] = stack.helpline.client.wait_for(
        lambda found: len(found) == 1, kind="messages", session_id=session)
    assert arrived["message"] == SEED_CHAT["chat_message"]

    status, listed = seed_list(seed.base, token)
    assert status == 200 and listed["count"] == 1
    chat = listed["results"][0]
    assert (chat["uuid"], chat["chat_session"], chat["chat_sender"], chat["chat_source"]) == (
        sent["uuid"], "e32434511", "23343411", "WENI")

    status, closed = seed_close(seed.base, token, "e32434511")
    assert (status, closed["status"], closed["closed_by"]) == (200, "success", "client")
    stack.wait_for(lambda: [d for d in stack.deliveries(conversation_id=session, action="close")
                            if d["status"] == "done"], what="the close reached the helpline")


def test_a_counsellor_reply_reaches_rapidpro_addressed_to_chat_sender(seed):
    """Weni sends the RapidPro contact uuid as ``chat_sender`` (the seed's example number
    is not one, and RapidPro would refuse it as a contact)."""
    stack = seed.stack
    token = seed_token(seed.base)
    contact = "5e2ab2b1-43b2-4ad9-9a8e-0d3c4f1a2b3c"
    assert seed_send(seed.base, token, {**SEED_CHAT, "chat_sender": contact})[0] == 201
    session = our_id(stack, "e32434511")
    stack.helpline.client.wait_for(lambda found: len(found) == 1, kind="messages",
                                   session_id=session)

    reply = stack.helpline.client.counsellor("reply", session_id=session,
                                             text="I am here for you", counsellor="Amani")
    assert reply["ok"], reply

    # Broadcasts or flow starts, as the site's RapidPro settings say: either way to the
    # contact Weni named as chat_sender, carrying the counsellor's text.
    [sent] = stack.wait_for(lambda: [
        r["body"] for kind in ("broadcasts", "flow_starts")
        for r in stack.rapidpro.client.records(kind)
        if "I am here for you" in json.dumps(r["body"])], what="the reply at RapidPro")
    assert sent["contacts"] == [contact]
    status, listed = seed_list(seed.base, token)
    assert [c["chat_source"] for c in listed["results"]] == ["HELPLINE", "WENI"]


def test_helpline_down_201_only_for_durable_chats_and_all_arrive_after_recovery(seed):
    stack = seed.stack
    token = seed_token(seed.base)
    stack.helpline.client.set_faults(down=True)
    answers = []
    for n in range(20):
        body = {**SEED_CHAT, "chat_session": f"down-{n % 4}", "chat_message": f"message {n}"}
        answers.append(seed_send(seed.base, token, body))
    assert {status for status, _ in answers} == {201}
    with stack.engine.connect() as conn:  # every 201 is a committed row
        stored = set(conn.execute(text("SELECT id FROM messages")).scalars())
    assert {body["uuid"] for _, body in answers} == stored
    stack.wait_for(lambda: len(stack.helpline.client.records("requests")) >= 3,
                   what="attempts against the dead helpline")
    assert stack.helpline.client.records("messages") == []

    stack.helpline.client.set_faults(down=False)
    stack.wait_for(lambda: len(stack.helpline.client.records("messages")) == 20, timeout=30,
                   what="all 20 chats delivered after recovery")
    for n in range(4):
        arrived = sorted(stack.helpline.client.records("messages",
                                                       session_id=our_id(stack, f"down-{n}")),
                         key=lambda m: m["session_seq"])
        assert [m["message"] for m in arrived] == [f"message {i}" for i in range(n, 20, 4)]
    assert len(stack.helpline.client.records("messages")) == 20  # none twice (stored as
    # OpenCHS stores them: every POST)


def test_the_same_chat_posted_twice_reaches_the_helpline_once(seed):
    stack = seed.stack
    token = seed_token(seed.base)
    first = seed_send(seed.base, token)
    second = seed_send(seed.base, token)
    assert first == second and first[0] == 201
    session = our_id(stack, "e32434511")
    assert len(stack.deliveries(conversation_id=session, action="message")) == 1
    stack.wait_for(lambda: [d for d in stack.deliveries(conversation_id=session,
                                                       action="message")
                            if d["status"] == "done"], what="the one delivery done")
    assert len(stack.helpline.client.records("messages", session_id=session)) == 1
    assert len(stack.helpline_requests("msg")) == 1


def test_a_hyphenated_session_closes_with_200_and_again_with_200(seed):
    stack = seed.stack
    token = seed_token(seed.base)
    session = "529150097d63-4b6f-9c1e-2d7a-5e8f0a1b2c3d"
    assert seed_send(seed.base, token, {**SEED_CHAT, "chat_session": session})[0] == 201
    assert seed_close(seed.base, token, session)[0] == 200
    assert seed_close(seed.base, token, session)[0] == 200
    assert seed_close(seed.base, token, "no-such-session")[0] == 404
    ours = our_id(stack, session)
    assert stack.deliveries(conversation_id=ours, action="close")  # the helpline is told


def test_two_sequential_closes_tell_the_helpline_once(seed):
    stack = seed.stack
    token = seed_token(seed.base)
    session = "6a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
    assert seed_send(seed.base, token, {**SEED_CHAT, "chat_session": session})[0] == 201
    assert seed_close(seed.base, token, session)[0] == 200
    assert seed_close(seed.base, token, session)[0] == 200
    closes = stack.deliveries(conversation_id=our_id(stack, session), action="close")
    assert len(closes) == 1, [(c["id"], c["params"], c["created_at"]) for c in closes]


def test_a_bad_token_is_refused_over_http(seed):
    seeds_example_token = "e3beef7dbf5ee90d8d7dd335bb1eb2eb6e34d577"
    response = requests.get(f"{seed.base}/api/chat/", timeout=10,
                            headers={"Authorization": f"Token {seeds_example_token}"})
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"
