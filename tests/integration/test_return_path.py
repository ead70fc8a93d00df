"""The return path over real HTTP: helpline callbacks → adapter → worker → RapidPro.

The sandbox helpline's counsellors act through its control API and call the adapter
back the way OpenCHS does; the sandbox RapidPro records every flow start and
broadcast with its exact body, which these tests compare whole.
"""

from __future__ import annotations

import time

import pytest

from tests.integration.conftest import CONTACT, FLOWS

pytestmark = pytest.mark.integration


def _starts(stack, event: str) -> list[dict]:
    return [r["body"] for r in stack.rapidpro.client.records("flow_starts")
            if r["body"]["flow"] == FLOWS[event]]


def _wait_starts(stack, event: str, count: int = 1) -> list[dict]:
    return stack.wait_for(lambda: len(_starts(stack, event)) >= count and _starts(stack, event),
                          what=f"{count} {event} flow start(s)")


def _counsellor(stack, action: str, **body) -> dict:
    outcome = stack.helpline.client.counsellor(action, **body)
    assert outcome["ok"], outcome
    return outcome


def test_a_whole_conversation_reaches_rapidpro_with_the_exact_bodies(stack):
    session = stack.start("conv-1", text="I am scared", message_id="rp-m0")["id"]
    stack.send("conv-1", "Are you there?", "rp-m1")
    arrived = stack.wait_for(lambda: len(stack.helpline_messages(session_id=session)) == 2
                             and stack.helpline_messages(session_id=session),
                             what="both client messages at the helpline")
    assert [m["message"] for m in arrived] == ["I am scared", "Are you there?"]
    assert stack.conversation("conv-1")["state"] == "waiting"

    _counsellor(stack, "assign", session_id=session, counsellor="Amani")
    assert _wait_starts(stack, "assigned") == [{
        "flow": FLOWS["assigned"], "contacts": [CONTACT],
        "params": {"event": "assigned", "conversation_id": "conv-1", "session_id": session,
                   "counsellor": "Amani", "language": None},
    }]

    _counsellor(stack, "reply", session_id=session, text="I am here. You are safe.",
                message_id="hl-1")
    [reply] = _wait_starts(stack, "message")
    our_id = reply["params"]["message_id"]
    assert reply == {
        "flow": FLOWS["message"], "contacts": [CONTACT],
        "params": {"event": "message", "conversation_id": "conv-1", "session_id": session,
                   "counsellor": "Amani",
                   "message_id": our_id, "text": "I am here. You are safe.",
                   "attachments": [], "attachment_urls": []},
    }

    # The helpline acknowledges the client's first message; the chatbot hears it.
    first_id = arrived[0]["message_id"]
    _counsellor(stack, "ack", session_id=session, message_id=first_id)
    assert _wait_starts(stack, "delivered") == [{
        "flow": FLOWS["delivered"], "contacts": [CONTACT],
        "params": {"event": "delivered", "conversation_id": "conv-1", "session_id": session,
                   "counsellor": "Amani",
                   "message_id": first_id, "chatbot_message_id": "rp-m0",
                   "status": "delivered", "language": None},
    }]
    # The chatbot acknowledges the counsellor's reply.
    ack = stack.post("/v1/conversations/conv-1/acks", {"message_id": our_id, "status": "read"})
    assert ack.status_code == 200, ack.text
    statuses = {m["message_id"]: m["status"] for m in stack.conversation("conv-1")["messages"]}
    assert statuses[our_id] == "read" and statuses[first_id] == "delivered"

    # The chatbot ends it: the counsellor sees the closing notice, after the messages.
    closed = stack.post("/v1/conversations/conv-1/close", {"reason": "resolved"})
    assert (closed.status_code, closed.json()["closed_by"]) == (200, "client")
    notices = stack.wait_for(lambda: len(stack.helpline_messages(session_id=session)) == 3
                             and stack.helpline_messages(session_id=session),
                             what="closing notice at the helpline")
    assert notices[-1]["message_id"] == f"{session}/close"
    assert sorted(m["session_seq"] for m in notices) == [1, 2, 3]
    late = stack.post("/v1/conversations/conv-1/messages", {"text": "hello?", "message_id": "x"})
    assert (late.status_code, late.json()["code"]) == (409, "conversation_closed")

    # A second conversation, ended by the counsellor.
    other = stack.start("conv-2", text="hi", message_id="rp2-m0")["id"]
    stack.wait_for(lambda: stack.helpline_messages(session_id=other), what="conv-2 delivered")
    _counsellor(stack, "assign", session_id=other, counsellor="Baraka")
    _counsellor(stack, "close", session_id=other)
    assert _wait_starts(stack, "closed") == [{
        "flow": FLOWS["closed"], "contacts": [CONTACT],
        "params": {"event": "closed", "conversation_id": "conv-2", "session_id": other,
                   "counsellor": "Baraka",
                   "closed_by": "counsellor", "reason": "resolved", "language": None},
    }]
    assert stack.conversation("conv-2")["closed_by"] == "counsellor"
    late = stack.post("/v1/conversations/conv-2/messages", {"text": "wait", "message_id": "y"})
    assert (late.status_code, late.json()["code"]) == (409, "conversation_closed")
    assert stack.rapidpro.client.records("broadcasts") == []  # ke uses flow starts only
    assert all(d["status"] == "done" for d in stack.deliveries())


def test_no_counsellor_timeout_tells_the_chatbot_once(stack):
    session = stack.start("nc-1", text="anyone?", site="nc")["id"]
    assert _wait_starts(stack, "no_counsellor") == [{
        "flow": FLOWS["no_counsellor"], "contacts": [CONTACT],
        "params": {"event": "no_counsellor", "conversation_id": "nc-1", "session_id": session,
                   "counsellor": None,
                   "closed": False, "waited_seconds": 1, "language": None},
    }]
    # Several relay passes later (every 0.3 s) it has still fired only once.
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        assert len(_starts(stack, "no_counsellor")) == 1
        time.sleep(0.1)
    conversation = stack.conversation("nc-1")
    assert conversation["state"] == "waiting" and conversation["no_counsellor_at"]


def test_rapidpro_429_retry_after_is_honoured_and_order_kept(stack):
    stack.helpline.client.configure(callback_url=f"{stack.url}/v1/sites/bc/openchs/")
    session = stack.start("bc-1", text="hello", site="bc")["id"]
    stack.wait_for(lambda: stack.helpline_messages(session_id=session), what="delivered")
    _counsellor(stack, "assign", session_id=session, counsellor="Chiku")
    _wait_starts(stack, "assigned")

    stack.rapidpro.client.set_faults(throttle_next=1, retry_after=2)
    for n in range(1, 4):
        _counsellor(stack, "reply", session_id=session, text=f"reply {n}", message_id=f"r{n}")
    broadcasts = stack.wait_for(
        lambda: len(stack.rapidpro.client.records("broadcasts")) >= 3
        and stack.rapidpro.client.records("broadcasts"), timeout=15, what="three broadcasts")
    assert [b["body"] for b in broadcasts] == [
        {"text": f"Chiku: reply {n}", "contacts": [CONTACT]} for n in (1, 2, 3)]
    assert broadcasts[0]["headers"]["Authorization"] == "Token rp-integration-token"

    calls = [r for r in stack.rapidpro.client.records("requests")
             if r["path"].endswith("broadcasts.json")]
    assert [c["status"] for c in calls] == [429, 201, 201, 201]
    assert calls[1]["time"] - calls[0]["time"] >= 2.0  # RapidPro said: 2 seconds
