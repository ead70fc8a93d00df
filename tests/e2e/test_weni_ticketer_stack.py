"""A whole Weni ticket over real processes: the weni-ticketer dialect end to end.

gunicorn, a delivery worker, the sandbox mailroom (Weni's generic-ticketer side) and the
sandbox helpline (OpenCHS) run as processes (:class:`LocalStack` with ``mailroom=True``).
Mailroom opens a ticket, forwards the child's messages and the history; a counsellor
takes it and replies; the helpline closes it (mailroom echoes the close back while our
callback waits); the platform reopens it, the child writes again, the platform closes
it. Every callback is signed and verified by the sandbox mailroom, which refuses a
tampered or stale one. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import pytest
import requests

from adapter.sandbox.stack import WENI_ASSIGNED_TEXT, LocalStack
from tests.support.waiting import wait_until

CHILD_NAME = "Test child"
PHONE = "254700000001"
SETTINGS = {"RETRY_SCHEDULE": [0.2, 0.5, 1], "SWEEP_INTERVAL_SECONDS": 0.2}


@pytest.fixture(params=["sqlite", "postgresql"])
def stack(request, redis_url):
    database_url, cleanup = None, None
    if request.param == "postgresql":
        from tests.support import servers

        server = request.getfixturevalue("postgres_server")
        database_url, name = servers.create_database(server)
        cleanup = (server, name)
    with LocalStack(database_url=database_url, redis_url=redis_url, web_workers=2,
                    mailroom=True, mailroom_args=("--retry-backoff", "0.2"),
                    settings=dict(SETTINGS)) as running:
        yield running
    if cleanup:
        servers.drop_database(*cleanup)


def mailroom_post(stack, path: str, body: dict | None = None) -> dict:
    answer = requests.post(f"{stack.mailroom_sandbox.url}/_sandbox/{path}", json=body or {},
                           timeout=30)
    answer.raise_for_status()
    return answer.json()


def helpline_texts(stack, session_id: str) -> list[str]:
    return [m["message"] for m in stack.helpline.client.records("messages")
            if m["session_id"] == session_id]


def agent_messages(stack) -> list[dict]:
    return stack.mailroom_sandbox.client.records("messages")


def test_a_whole_ticket_through_gunicorn_the_worker_and_both_sandboxes(stack):
    mailroom, helpline = stack.mailroom_sandbox.client, stack.helpline.client
    # -- a flow opens a ticket (topic → the demo site); the child's number and name ride
    opened = mailroom_post(stack, "tickets/open", {
        "contact": {"name": CHILD_NAME, "urns": [f"whatsapp:{PHONE}"]}, "body": "high risk"})
    assert opened["ok"], opened
    assert opened["status"] == 201
    ticket, external_id = opened["ticket_uuid"], opened["external_id"]
    forwarded = mailroom_post(stack, f"tickets/{ticket}/forward", {"text": "hello?"})
    assert forwarded["ok"] and forwarded["status"] == 200, forwarded
    now = datetime.now(UTC)
    history = mailroom_post(stack, f"tickets/{ticket}/history", {"messages": [
        {"direction": "in", "text": "help", "created_on": _go(now - timedelta(minutes=2))},
        {"direction": "out", "text": "Hi, I am the bot",
         "created_on": _go(now - timedelta(minutes=3))}]})
    assert history["ok"], history
    assert history["attempts"][-1]["calls"][-1]["response"] == {
        "status": "history_received", "messages_received": 2}

    # -- the helpline gets the conversation, pseudonymised, history in sent_at order
    # (OpenCHS has no open call: the first message opens the chat.)
    texts = wait_until(lambda: (t := helpline_texts(stack, external_id)) and len(t) >= 4 and t,
                       what="four messages at the helpline")
    assert texts[:2] == ["high risk", "hello?"]
    assert texts[2].endswith("bot] Hi, I am the bot") and texts[2].startswith("[earlier ")
    assert texts[3].endswith("child] help")
    assert len(texts) == 4
    seen_by_helpline = json.dumps(helpline.records())
    assert PHONE not in seen_by_helpline and CHILD_NAME not in seen_by_helpline

    # -- a counsellor takes it and replies: both reach the child through signed callbacks
    helpline.counsellor("assign", session_id=external_id, counsellor="counsellor-amani")
    helpline.counsellor("reply", session_id=external_id, text="I am here. You are safe.")
    mailroom.wait_for(lambda ms: len(ms) >= 2, kind="messages", timeout=20)
    messages = agent_messages(stack)
    assert [m["text"] for m in messages] == [WENI_ASSIGNED_TEXT, "I am here. You are safe."]
    assert messages[0]["sender"]["type"] == "system"
    assert messages[1]["sender"] == {"type": "agent", "id": "counsellor-amani",
                                     "name": "counsellor-amani"}
    assert {m["ticket_uuid"] for m in messages} == {ticket}
    accepted = [c for c in mailroom.records("callbacks") if c["accepted"]]
    assert len(accepted) == 2 and all(c["signature"].startswith("sha256=") for c in accepted)
    detail = _detail(stack, external_id)
    reply = next(m for m in detail["messages"] if m["direction"] == "to_client")
    wait_until(lambda: _detail(stack, external_id)["messages"][-1]["status"] == "sent",
               what="the reply recorded as sent")
    assert reply["message_id"] == messages[1]["message_external_id"]

    # -- the helpline closes; mailroom echoes the close back while our callback waits
    helpline.counsellor("close", session_id=external_id)
    mailroom.wait_for(lambda ts: any(t["status"] == "closed" for t in ts), kind="tickets",
                      timeout=20)
    echo = [c for c in mailroom.records("outbound") if c["operation"] == "close_echo"]
    assert [c["status"] for c in echo] == [409]
    assert echo[0]["response"]["error"] == "ticket_already_closed"
    close_callback = [c for c in mailroom.records("callbacks") if c["route"] == "close"]
    assert [(c["status"], c["accepted"]) for c in close_callback] == [(200, True)]
    assert json.loads(close_callback[0]["body"])["closed_by"]["type"] == "agent"
    assert _detail(stack, external_id)["state"] == "closed"

    # -- the platform reopens: back to requested, opened at the helpline again
    reopened = mailroom_post(stack, f"tickets/{ticket}/reopen")
    assert reopened["ok"] and reopened["calls"][-1]["status"] == 200, reopened
    assert reopened["calls"][-1]["response"]["status"] == "open"
    assert _detail(stack, external_id)["state"] in ("requested", "waiting")
    again = mailroom_post(stack, f"tickets/{ticket}/forward", {"text": "are you still there?"})
    assert again["ok"], again
    wait_until(lambda: "are you still there?" in helpline_texts(stack, external_id),
               what="the message after the reopen at the helpline")
    helpline.counsellor("assign", session_id=external_id, counsellor="counsellor-baraka")
    helpline.counsellor("reply", session_id=external_id, text="Yes, I am here.")
    mailroom.wait_for(lambda ms: any(m["text"] == "Yes, I am here." for m in ms),
                      kind="messages", timeout=20)

    # -- the platform closes: the helpline is told, the ticket is closed once
    closed = mailroom_post(stack, f"tickets/{ticket}/close")
    assert closed["ok"] and closed["calls"][-1]["status"] == 200, closed
    wait_until(lambda: _detail(stack, external_id)["state"] == "closed", what="closed")
    assert _detail(stack, external_id)["closed_by"] == "client"  # the platform's side
    assert [t["status"] for t in mailroom.records("tickets")] == [
        "open", "closed", "open", "closed"]

    # -- nothing about the child in the adapter's answers to mailroom, nor a second copy
    texts = [m["text"] for m in agent_messages(stack)]
    assert texts.count("I am here. You are safe.") == 1
    outbound = json.dumps(mailroom.records("outbound"))
    answers = json.dumps([c["response"] for c in mailroom.records("outbound")])
    assert PHONE in outbound  # mailroom did send the number ...
    assert PHONE not in answers and CHILD_NAME not in answers  # ... we never echo it


def test_callbacks_are_signed_and_a_tampered_or_stale_one_is_refused(stack):
    mailroom, helpline = stack.mailroom_sandbox.client, stack.helpline.client
    opened = mailroom_post(stack, "tickets/open", {"contact": {"urns": [f"whatsapp:{PHONE}"]},
                                                   "body": "please help"})
    external_id = opened["external_id"]
    wait_until(lambda: helpline_texts(stack, external_id), what="the ticket at the helpline")
    helpline.counsellor("assign", session_id=external_id, counsellor="counsellor-amani")
    helpline.counsellor("reply", session_id=external_id, text="Hello, I am listening.")
    mailroom.wait_for(lambda ms: len(ms) >= 2, kind="messages", timeout=20)
    ours = [c for c in mailroom.records("callbacks") if c["accepted"]][-1]
    raw = ours["body"].encode()
    expected = "sha256=" + hmac.new(stack.weni_secret.encode(), raw,
                                    hashlib.sha256).hexdigest()
    assert ours["signature"] == expected  # HMAC-SHA256(secret, the exact body)
    url = f"{stack.mailroom_sandbox.url}{ours['path']}"
    sent = len(agent_messages(stack))

    tampered = raw.replace(b"Hello, I am listening.", b"Come and meet me alone.")
    refused = requests.post(url, data=tampered, timeout=10, headers={
        "Content-Type": "application/json", "X-Webhook-Signature": ours["signature"],
        "X-Webhook-Timestamp": _go(datetime.now(UTC))})
    assert (refused.status_code, refused.json()["error"]) == (401, "invalid_signature")
    stale = requests.post(url, data=raw, timeout=10, headers={
        "Content-Type": "application/json", "X-Webhook-Signature": ours["signature"],
        "X-Webhook-Timestamp": _go(datetime.now(UTC) - timedelta(minutes=10))})
    assert (stale.status_code, stale.json()["error"]) == (401, "expired_request")
    assert len(agent_messages(stack)) == sent

    # A secret that no longer matches (mailroom rotated it): our callback is refused, kept
    # and retried later as a site problem, never "delivered".
    before = len(mailroom.records("callbacks"))
    mailroom.configure(webhook_secret="rotated-elsewhere")
    helpline.counsellor("reply", session_id=external_id, text="Are you still there?")
    refused = mailroom.wait_for(lambda cs: len(cs) > before, kind="callbacks", timeout=20)
    assert [(c["status"], c["answer"]["error"]) for c in refused[before:]] == [
        (401, "invalid_signature")]
    assert len(agent_messages(stack)) == sent
    detail = wait_until(lambda: (d := _detail(stack, external_id))["messages"][-1]
                        ["failure_reason"] is None and d, what="the reply kept")
    assert detail["messages"][-1]["status"] == "accepted"


def _detail(stack, external_id: str) -> dict:
    answer = stack.session().get(f"{stack.url}/v1/conversations/{external_id}", timeout=10)
    answer.raise_for_status()
    return answer.json()


def _go(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
