"""The delivery engine against real processes: retries, crashes, dead letters and replay.

Client messages go chatbot → gunicorn → PostgreSQL outbox → worker → sandbox helpline
over HTTP. The sandbox records what arrived (``messages``, with ``session_seq`` in
arrival order) and every attempt (``requests``), so each test can say exactly how
many times something was tried and in which order it landed.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def _texts(stack, session_id: str) -> list[str]:
    messages = sorted(stack.helpline_messages(session_id=session_id),
                      key=lambda m: m["session_seq"])
    return [m["message"] for m in messages]


def _open(stack, name: str, first: str = "first") -> str:
    """Start a conversation whose first message is ``first``; returns our session id."""
    return stack.start(name, text=first)["id"]


def _message_deliveries(stack, conversation_id: str) -> list[dict]:
    return stack.deliveries(conversation_id=conversation_id, action="message")


def test_transient_503s_are_retried_and_each_message_arrives_once_in_order(stack):
    stack.helpline.client.set_faults(fail_next=2, fail_status=503)
    session = _open(stack, "c-503", "one")
    stack.send("c-503", "two", "c-503-m1")
    stack.send("c-503", "three", "c-503-m2")

    stack.wait_for(lambda: len(_texts(stack, session)) == 3, what="three messages delivered")
    assert _texts(stack, session) == ["one", "two", "three"]  # each once: the sandbox
    # stores every POST, as OpenCHS does, so a second copy would be seen here
    statuses = [r["status"] for r in stack.helpline_requests("msg")]
    assert statuses == [503, 503, 201, 201, 201]
    first, *rest = _message_deliveries(stack, session)
    assert (first["status"], first["attempts"], first["last_status_code"]) == ("done", 3, 201)
    assert all(d["status"] == "done" and d["attempts"] == 1 for d in rest)
    messages = stack.wait_for(
        lambda: [m for m in stack.conversation("c-503")["messages"] if m["status"] == "sent"],
        what="messages marked sent")
    assert len(messages) == 3


def test_retry_after_from_the_helpline_is_honoured(stack):
    stack.helpline.client.set_faults(fail_next=1, fail_status=503, retry_after=2)
    session = _open(stack, "c-retry-after")

    stack.wait_for(lambda: _texts(stack, session) == ["first"], what="message delivered")
    attempts = stack.helpline_requests("msg")
    assert [a["status"] for a in attempts] == [503, 201]
    # Our own schedule says 0.3 s; the helpline asked for 2 s.
    assert attempts[1]["time"] - attempts[0]["time"] >= 2.0


def test_a_permanent_400_is_not_retried_and_is_marked_failed(stack):
    stack.helpline.client.set_faults(fail_status_permanent=400)
    _open(stack, "c-400")

    failed = stack.wait_for(lambda: stack.deliveries(status="failed"), what="delivery failed")
    assert len(failed) == 1
    assert (failed[0]["attempts"], failed[0]["last_status_code"]) == (1, 400)
    assert "400" in failed[0]["last_error"]
    assert [r["status"] for r in stack.helpline_requests("msg")] == [400]
    message = stack.wait_for(
        lambda: [m for m in stack.conversation("c-400")["messages"] if m["status"] == "failed"],
        what="message marked failed")
    assert message[0]["failure_reason"]


def test_helpline_down_then_up_delivers_everything_in_order_none_twice(stack):
    stack.helpline.client.set_faults(down=True)
    session = _open(stack, "c-down", "m0")
    for n in range(1, 5):
        stack.send("c-down", f"m{n}", f"c-down-m{n}")
    stack.wait_for(lambda: len(stack.helpline.client.records("requests")) >= 3,
                   what="several attempts against the dead helpline")
    assert stack.helpline_messages() == []

    stack.helpline.client.set_faults(down=False)
    stack.wait_for(lambda: len(_texts(stack, session)) == 5, timeout=15,
                   what="every message delivered after recovery")
    assert _texts(stack, session) == ["m0", "m1", "m2", "m3", "m4"]  # each once
    assert all(d["status"] == "done" for d in _message_deliveries(stack, session))


@pytest.mark.parametrize("dedupes", [False, True], ids=["openchs-stores-every-post",
                                                       "helpline-dedupes"])
def test_a_worker_killed_mid_delivery_leaves_the_delivery_to_complete_once(stack, dedupes):
    """The one call in flight at the kill may land (the helpline got it) and is made
    again once the lease runs out: OpenCHS, which stores every POST, shows it twice —
    one copy more, the calls that were in flight — and a helpline that deduplicates by
    our message id once. Recorded once either way."""
    stack.helpline.client.configure(dedupe_message_ids=dedupes)
    stack.helpline.client.set_faults(slow=2.0)
    session = _open(stack, "c-kill", "before the crash")
    stack.wait_for(lambda: stack.helpline_requests("msg"), what="the worker is sending")
    sending = stack.deliveries(action="message")
    assert sending[0]["status"] == "sending"

    stack.workers[0].kill()  # SIGKILL: no chance to clean up
    stack.helpline.client.set_faults(slow=0)
    stack.start_worker()

    done = stack.wait_for(
        lambda: [d for d in stack.deliveries(action="message") if d["status"] == "done"],
        timeout=15, what="delivery completed by another worker")
    assert done[0]["attempts"] == 2  # the lost attempt and the one after the lease ran out
    # The call in flight, and its retry; the first may still be in the helpline's hands
    # (slowed, and its sender dead) when the retry is done.
    def answered() -> list[dict]:
        return [r for r in stack.helpline_requests("msg") if "status" in r]

    stack.wait_for(lambda: len(answered()) == 2, what="both calls answered")
    assert len(stack.helpline_requests("msg")) == 2
    if dedupes:
        assert _texts(stack, session) == ["before the crash"]
        assert len(stack.helpline.client.records("duplicates")) == 1
    else:
        assert _texts(stack, session) == ["before the crash"] * 2


def test_deliveries_cli_lists_shows_and_replays_failed_deliveries(stack):
    stack.helpline.client.set_faults(fail_status_permanent=400)
    first = _open(stack, "c-cli-1", "to replay one")
    second = _open(stack, "c-cli-2", "to replay all")
    failed = stack.wait_for(lambda: len(stack.deliveries(status="failed")) == 2 and
                            stack.deliveries(status="failed"), what="two failed deliveries")
    one, two = (d["id"] for d in failed)

    listed = stack.cli("deliveries", "list", "--failed").stdout
    assert {line.split("\t")[0] for line in listed.splitlines()} == {str(one), str(two)}
    assert stack.cli("deliveries", "list", "--failed", "--site", "nc").stdout.strip() \
        == "no deliveries"
    shown = stack.cli("deliveries", "show", str(one)).stdout
    assert "status: failed" in shown and "attempts: 1" in shown
    assert "last_status_code: 400" in shown and "last_error: openchs msg: HTTP 400" in shown
    assert "to replay" not in shown + listed  # never message text

    stack.helpline.client.set_faults(fail_status_permanent=None)
    assert "requeued 1" in stack.cli("deliveries", "retry", str(one)).stdout
    stack.wait_for(lambda: _texts(stack, first) == ["to replay one"], what="replayed one")
    assert stack.deliveries(id=two)[0]["status"] == "failed"
    stack.wait_for(lambda: stack.conversation("c-cli-1")["messages"][0]["status"] == "sent",
                   what="the replayed message no longer failed")

    assert "requeued 1" in stack.cli("deliveries", "retry", "--all-failed").stdout
    stack.wait_for(lambda: _texts(stack, second) == ["to replay all"], what="replayed all")
    assert stack.cli("deliveries", "list", "--failed").stdout.strip() == "no deliveries"
    replayed = stack.wait_for(lambda: [m for m in stack.conversation("c-cli-2")["messages"]
                                       if m["status"] == "sent"], what="replayed all: sent")[0]
    assert (replayed["status"], replayed["failure_reason"]) == ("sent", None)
