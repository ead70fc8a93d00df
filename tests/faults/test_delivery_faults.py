"""Faults on the way in and on the way to the helpline, under a steady stream.

Every test runs the same stream — conversations on three sites, numbered messages,
each sent RapidPro-style with an Idempotency-Key and retried on 503 or a broken
connection — injects one fault while it flows, heals it, and then counts at the
sandbox helpline: every message answered 2xx arrived, in order within its
conversation, and exactly once — or, for a fault that leaves the adapter unable to know
whether a call landed (a timeout, a worker killed mid-call, the database gone before
the outcome was written), at most once more for each call in flight when it struck.
The sandbox, like OpenCHS's ``msg/``, stores every POST: nothing is hidden by a dedupe.
The row it records is the reliability table in docs/reliability.md.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable

import pytest
from sqlalchemy import text

from tests.faults.stack import FAULT_SETTINGS
from tests.faults.traffic import (
    RECORDING_SLACK,
    Attempt,
    Conversation,
    Stream,
    assert_clean,
    in_flight_calls,
    msg_calls,
    post_until_accepted,
    tally,
    text_of,
)
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

TO_HELPLINE = "chatbot → helpline"


def hold(seconds: float, check: Callable[[], None] | None = None) -> None:
    """Keep a fault in place for a measured time, checking an invariant meanwhile."""
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        if check is not None:
            check()
        time.sleep(min(0.5, left))


def flowing(stream: Stream, count: int = 6) -> None:
    wait_until(lambda: stream.accepted_count() >= count, timeout=20, what="the stream flowing")


def run(stack, record, fault: str, inject: Callable[[Stream], str | None], *,
        tag: str, drain: float = 60.0, in_flight: Callable[[], int] | None = None,
        **stream_args) -> tuple[Stream, dict]:
    """``in_flight``: for a fault that may leave calls unrecorded, how many calls were in
    flight when it struck (asked once everything arrived): duplicates stay within it."""
    began = time.monotonic()
    stream = Stream(stack, tag, **stream_args).start()
    try:
        note = inject(stream)
    finally:
        stream.join()
    seen = stream.wait_delivered(timeout=drain)
    wait_until(lambda: not stack.deliveries(status="sending"), timeout=drain,
               what="no call left in flight")  # so every copy has landed when counted
    seen = stream.arrivals()
    bound = in_flight() if in_flight is not None else 0
    row = record(tally(stream, seen, fault, TO_HELPLINE, time.monotonic() - began, note=note,
                       in_flight=bound))
    assert_clean(row, stream, stack, max_duplicates=bound)
    return stream, row


def _msg_statuses(stack) -> list[int]:
    return [r["status"] for r in stack.helpline_requests("msg")]


# -- the helpline misbehaving -------------------------------------------------------------

def test_helpline_down_for_30_seconds_loses_nothing(stack, record):
    def inject(stream: Stream) -> str:
        flowing(stream)
        accepted_before = stream.accepted_count()
        stack.helpline.client.set_faults(down=True)
        # A request the helpline took in before the switch may still be storing its
        # message: the sandbox records every request on arrival and its status when it
        # answers, so those without a status yet are the ones still in flight. Read
        # them first, then the messages: nothing else may arrive from here on.
        in_flight = [r for r in stack.helpline_requests("") if "status" not in r]
        before = len(stack.helpline_messages())

        def nothing_arrives() -> None:
            assert len(stack.helpline_messages()) <= before + len(in_flight)

        hold(30.0, nothing_arrives)
        accepted_during = stream.accepted_count() - accepted_before
        stack.helpline.client.set_faults(down=False)
        assert accepted_during >= 20  # the chatbot was answered 2xx: durable, delivered later
        return f"30 s outage; {accepted_during} messages accepted while it was down"

    run(stack, record, "helpline down 30 s", inject, tag="down", messages=14, interval=2.0)
    # Lane heads were tried again and again through the outage, none given up on.
    assert max(d["attempts"] for d in stack.deliveries(action="message")) >= 10
    assert stack.deliveries(status="failed") == []


def test_helpline_slower_than_the_http_timeout(stack, record):
    def inject(stream: Stream) -> str:
        flowing(stream)
        # Messages reaching the helpline: the worker holds a session token, so what is
        # slowed below are message calls (a login slowed past the timeout sends none).
        wait_until(lambda: len(stack.helpline_messages()) >= 3, timeout=20,
                   what="messages reaching the helpline")
        stack.helpline.client.set_faults(slow=2.0)  # read timeout is 1.5 s
        hold(6.0)
        stack.helpline.client.set_faults(slow=0)
        return "2 s answers for 6 s against a 1.5 s read timeout"

    read_timeout = FAULT_SETTINGS["ADAPTER_HTTP_READ_TIMEOUT"]

    def timed_out_but_landed() -> int:
        """Calls the helpline stored after we had stopped waiting for its answer: the
        adapter cannot know they landed, so each may arrive once more."""
        return sum(1 for r in msg_calls(stack) if r.get("status") == 201
                   and r["answered_at"] - r["time"] > read_timeout)

    _, row = run(stack, record, "helpline slower than the timeout", inject, tag="slow",
                 messages=10, interval=0.3, in_flight=timed_out_but_landed)
    # The fault bit: attempts timed out at our end and were made again.
    assert any(d["attempts"] > 1 for d in stack.deliveries(action="message"))
    assert row["in_flight"] >= 1  # message calls, not only logins, outlasted the timeout


def test_helpline_5xx_bursts(stack, record):
    def inject(stream: Stream) -> str:
        flowing(stream)
        for status in (500, 502, 503, 504, 503):
            stack.helpline.client.set_faults(fail_next=4, fail_status=status)
            wait_until(lambda: stack.helpline.client.faults()["fail_next"] == 0, timeout=15,
                       what=f"the {status} burst consumed")
        return "five bursts of four: 500, 502, 503, 504, 503"

    run(stack, record, "helpline 5xx bursts", inject, tag="burst", messages=10, interval=0.3)
    statuses = _msg_statuses(stack)
    assert {500, 502, 503, 504} <= set(statuses)
    assert statuses.count(503) >= 8


def test_helpline_session_token_expiring_mid_stream(stack, record):
    def inject(stream: Stream) -> str:
        flowing(stream)
        for round_ in range(1, 5):
            stack.helpline.client.set_faults(expire_tokens=True)
            wait_until(lambda r=round_: len(stack.helpline.client.records("tokens")) >= r,
                       timeout=15, what="the adapter logging in again")
        return "every token expired four times; the adapter logged in again each time"

    run(stack, record, "helpline token expiring mid-stream", inject, tag="token",
        messages=10, interval=0.3)
    assert 401 in _msg_statuses(stack)
    assert len(stack.helpline.client.records("tokens")) >= 4


# -- our own processes dying --------------------------------------------------------------

def test_delivery_worker_sigkilled_mid_delivery_and_restarted(stack, record):
    worker = stack.workers[0]
    kills: list[tuple[float, float]] = []  # (killed at, restart began), unix time

    def inject(stream: Stream) -> str:
        flowing(stream)
        stale: set[tuple] = set()  # leases of killed workers, still running out

        def claimed() -> set[tuple]:
            return {(d["id"], d["lease_until"]) for d in stack.deliveries(status="sending")
                    } - stale

        for _ in range(3):
            stack.helpline.client.set_faults(slow=0.5)  # keep a delivery in flight
            stale |= wait_until(claimed, timeout=15, what="a delivery in flight")
            killed_at = time.time()
            worker.kill()  # SIGKILL: no cleanup, its lease must run out
            stack.helpline.client.set_faults(slow=0)
            kills.append((killed_at, time.time()))  # nothing sends until the restart
            worker.start(timeout=30)
        return "SIGKILL during a delivery, three times, a new worker started at once"

    def in_flight_at_the_kills() -> int:
        return sum(len(in_flight_calls(stack, killed, sent_until=restarted))
                   for killed, restarted in kills)

    run(stack, record, "delivery worker SIGKILL mid-delivery", inject, tag="kill",
        messages=12, interval=0.3, in_flight=in_flight_at_the_kills)


def _gunicorn_worker_serving(stack) -> int:
    """A gunicorn worker with a request open on the web port (it is mid-request)."""
    import psutil

    port = int(stack.url.rsplit(":", 1)[1])
    for pid in stack.gunicorn_workers():
        for conn in psutil.Process(pid).net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status == "ESTABLISHED":
                return pid
    return 0


def _waiting_on_lock(stack) -> int:
    with stack.engine.connect() as conn:
        return conn.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'")).scalar()


def test_gunicorn_worker_sigkilled_mid_request(stack, record):
    def inject(stream: Stream) -> str:
        flowing(stream)
        killed = 0
        for _ in range(3):
            before = set(stack.gunicorn_workers())
            # Hold new deliveries back inside the database, so requests are certainly in
            # flight in both gunicorn workers when one of them is killed.
            with stack.engine.connect() as conn:
                conn.execute(text("LOCK TABLE deliveries IN EXCLUSIVE MODE"))
                wait_until(lambda: _waiting_on_lock(stack) >= 2, timeout=10,
                           what="requests blocked mid-transaction")
                victim = wait_until(lambda: _gunicorn_worker_serving(stack), timeout=5,
                                    what="a worker mid-request")
                os.kill(victim, signal.SIGKILL)
                killed += 1
                conn.rollback()
            wait_until(lambda b=before, v=victim: len(stack.gunicorn_workers()) == 2
                       and v not in stack.gunicorn_workers() and set(stack.gunicorn_workers())
                       != b, timeout=20, what="gunicorn replacing the killed worker")
            flowing(stream, stream.accepted_count() + 3)
        return f"{killed} gunicorn workers SIGKILLed while holding a request open"

    stream, row = run(stack, record, "gunicorn worker SIGKILL mid-request", inject,
                      tag="gkill", messages=14, interval=0.2)
    assert row["connection_errors"] >= 3  # each kill broke a request the client retried


def test_redis_restarted_in_flight_work_recovered_from_the_database(stack, record):
    def inject(stream: Stream) -> str:
        flowing(stream)
        stack.helpline.client.set_faults(slow=0.3)  # work in flight when Redis goes
        accepted_before = stream.accepted_count()
        stack.own_redis.stop()
        hold(3.0)
        accepted_during = stream.accepted_count() - accepted_before
        stack.own_redis.start()  # empty: queue, flags and pacing all lost
        stack.helpline.client.set_faults(slow=0)
        assert accepted_during >= 3  # the database, not Redis, decides what is accepted
        return f"Redis stopped 3 s, restarted empty; {accepted_during} accepted meanwhile"

    run(stack, record, "Redis restarted (empty)", inject, tag="redis", messages=12,
        interval=0.3)


def test_postgresql_unreachable_is_503_never_2xx_and_recovers(stack, record):
    window: dict[str, float] = {}

    def inject(stream: Stream) -> str:
        flowing(stream)
        window["cut"] = time.monotonic()
        stack.proxy.cut()
        hold(4.0)
        stack.proxy.restore()
        window["restored"] = time.monotonic()
        return "connections to PostgreSQL cut for 4 s (proxy closed), then restored"

    def answered_while_cut_off() -> int:
        """Calls the helpline answered while the worker could not write their outcome
        (from just before the cut until shortly after the database was back): the batch
        that met the cut stops, and those calls go again."""
        offset = time.time() - time.monotonic()  # the sandbox records wall-clock times
        start = window["cut"] + offset - RECORDING_SLACK
        end = window["restored"] + offset + 1.0
        return sum(1 for r in msg_calls(stack) if r.get("answered_at") is not None
                   and start <= r["answered_at"] <= end)

    stream, row = run(stack, record, "PostgreSQL unreachable", inject, tag="pg",
                      messages=12, interval=0.3, in_flight=answered_while_cut_off)
    inside = [a for c in stream.conversations for a in c.attempts
              if a.started >= window["cut"] and a.ended <= window["restored"]]
    assert inside, "no request was made while the database was unreachable"
    assert [a for a in inside if a.status is not None and a.status < 300] == []
    refused = [a for a in inside if a.status == 503]
    assert refused and all(a.retry_after for a in refused)
    assert row["answered_503"] >= 3


# -- the same webhook twice at once -------------------------------------------------------

def _twice_at_once(stack, url: str, body: dict, headers: dict) -> list[dict]:
    barrier = threading.Barrier(2, timeout=10)
    answers: list[dict | None] = [None, None]
    attempts: list[Attempt] = []
    unexpected: list[str] = []

    def send(slot: int) -> None:
        import requests

        http = requests.Session()
        http.headers["Authorization"] = f"Token {stack.key}"
        barrier.wait()
        answers[slot] = post_until_accepted(http, url, body, headers, attempts,
                                            lambda r: unexpected.append(r.text[:200]))

    threads = [threading.Thread(target=send, args=(slot,)) for slot in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert unexpected == [] and None not in answers, (unexpected, answers)
    return answers


def test_the_same_webhook_twice_concurrently_is_one_message_one_delivery(stack, record):
    began = time.monotonic()
    stream = Stream(stack, "twice", sites=("ke",), per_site=1)
    conversation: Conversation = stream.conversations[0]
    name = conversation.name
    start_body = {"site": "ke", "text": text_of(name, 0), "message_id": f"{name}-m0",
                  "contact": {"uuid": "5b7b4a0e-8a4c-4f3e-9d55-0c7f2a1d9e01"},
                  "results": {"conversation_id": {"value": name, "category": "All"}}}
    first, second = _twice_at_once(stack, f"{stack.url}/v1/conversations", start_body,
                                   {"Idempotency-Key": f"{name}-start"})
    assert first == second
    conversation.session_id = first["id"]
    conversation.accepted.append(0)
    for n in range(1, 9):
        body = {"text": text_of(name, n), "message_id": f"{name}-m{n}"}
        # Odd messages carry an Idempotency-Key; even ones only their message_id.
        headers = {"Idempotency-Key": f"{name}-m{n}"} if n % 2 else {}
        one, two = _twice_at_once(stack, f"{stack.url}/v1/conversations/{name}/messages",
                                  body, headers)
        assert one["message_id"] == two["message_id"], (one, two)
        conversation.accepted.append(n)

    seen = stream.wait_delivered(timeout=30)
    row = record(tally(stream, seen, "same webhook twice, concurrently", TO_HELPLINE,
                       time.monotonic() - began,
                       note="start + 8 messages, each posted by two threads at once "
                            "(with and without Idempotency-Key)"))
    assert_clean(row, stream)
    with stack.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM messages")).scalar() == 9
    assert len(stack.deliveries(action="message")) == 9
