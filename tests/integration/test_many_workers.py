"""Scale-out as operators run it: three delivery worker processes and the web tier on two
gunicorn instances, one PostgreSQL and one Redis. Each conversation's messages go in
through both instances by turns; one worker is SIGKILLed mid-run.

- per-conversation order holds across workers (a re-sent call right after its first
  copy, never after a later message);
- nothing is lost, and no call is made twice except the calls in flight at the kill
  (no two live workers ever perform the same delivery);
- what the killed worker had leased is taken over within the lease (plus a sweep).
"""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import create_engine, text

from adapter.config import normalise_database_url
from adapter.sandbox.process import ManagedProcess, free_port
from adapter.sandbox.stack import BIN, ROOT, SITE, LocalStack
from tests.integration.test_crash_redelivery import (
    RECORDING_SLACK,
    SETTINGS,
    _all_deliveries_done,
)
from tests.support import servers
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

LEASE = SETTINGS["DELIVERY_LEASE_SECONDS"]  # the crash test's settings: a 5 s lease
CONVERSATIONS, MESSAGES = 24, 6


@pytest.fixture(scope="module")
def farm(postgres_server, redis_url):
    with servers.own_database(postgres_server) as url, LocalStack(
            database_url=url, redis_url=redis_url, workers=3, web_workers=2,
            settings=dict(SETTINGS)) as stack:
        port = free_port()
        second = ManagedProcess(
            [str(BIN / "gunicorn"), "-c", str(ROOT / "gunicorn.conf.py"),
             "-b", f"127.0.0.1:{port}", "-w", "2", "wsgi:app"],
            env=stack.env, ready_url=f"http://127.0.0.1:{port}/healthz", name="gunicorn-2",
            cwd=ROOT)
        stack.processes.append(second.start(timeout=60))
        yield stack, [stack.url, f"http://127.0.0.1:{port}"]


def _stream(stack: LocalStack, urls: list[str]) -> dict[str, list[str]]:
    """Each conversation's messages in order, by turns through the two instances."""
    http = stack.session()
    sessions: dict[str, list[str]] = {}
    ours: dict[str, str] = {}
    for n in range(MESSAGES):
        for c in range(CONVERSATIONS):
            name, message = f"farm-{c}", f"farm-c{c}#{n}"
            url = urls[(n + c) % 2]
            if n == 0:
                answer = http.post(f"{url}/v1/conversations", timeout=10, json={
                    "conversation_id": name, "site": SITE, "contact": {"uuid": f"c-farm-{c}"},
                    "text": message, "message_id": f"{name}-0"})
                assert answer.status_code == 201, answer.text
                ours[name] = answer.json()["id"]
                sessions[ours[name]] = []
            else:
                answer = http.post(f"{url}/v1/conversations/{name}/messages", timeout=10,
                                   json={"message_id": f"{name}-{n}", "text": message})
                assert answer.status_code == 202, answer.text
            sessions[ours[name]].append(message)
    return sessions


def _sending_ids(stack: LocalStack) -> set[int]:
    engine = create_engine(normalise_database_url(stack.database_url))
    try:
        with engine.connect() as conn:
            return set(conn.execute(text(
                "SELECT id FROM deliveries WHERE status = 'sending'")).scalars())
    finally:
        engine.dispose()


def _done(stack: LocalStack, ids: set[int]) -> bool:
    engine = create_engine(normalise_database_url(stack.database_url))
    try:
        with engine.connect() as conn:
            left = conn.execute(text(
                "SELECT count(*) FROM deliveries WHERE status <> 'done' AND id = ANY(:ids)"),
                {"ids": list(ids)}).scalar()
            return left == 0
    finally:
        engine.dispose()


def test_three_workers_two_web_instances_one_killed(farm):
    stack, urls = farm
    helpline = stack.helpline.client
    helpline.set_faults(slow=0.15)  # calls in flight when the kill comes
    workers = [p for p in stack.processes if p.name == "worker"]
    assert len(workers) == 3
    with ThreadPoolExecutor(1) as pool:
        streaming = pool.submit(_stream, stack, urls)
        wait_until(lambda: len([r for r in helpline.records("messages")]) >= 20, timeout=30,
                   what="the workers are delivering")
        leased_before = _sending_ids(stack)
        killed_at = time.time()
        workers[0].kill()
        leased = _sending_ids(stack) | leased_before  # the killed one's leases among them
        assert leased
        sessions = streaming.result(timeout=90)
    helpline.set_faults(slow=0)

    wait_until(lambda: _done(stack, leased), timeout=LEASE + 10,
               what="the killed worker's leases taken over")
    taken_over = time.time() - killed_at
    expected = sum(len(texts) for texts in sessions.values())
    wait_until(lambda: len({(m["session_id"], m["message"]) for m in helpline.records("messages")
                            if m["session_id"] in sessions}) >= expected
               and _all_deliveries_done(stack), timeout=60, what="everything delivered")

    stored = [m for m in helpline.records("messages") if m["session_id"] in sessions]
    calls = [r for r in helpline.records("requests")
             if r["path"].rstrip("/").endswith("msg") and r.get("json")
             and r["json"].get("session_id") in sessions]
    in_flight = Counter(r["json"]["message_id"] for r in calls if r["time"] <= killed_at
                        and (r.get("answered_at") is None
                             or r["answered_at"] >= killed_at - RECORDING_SLACK))
    copies = Counter(m["message_id"] for m in stored)
    twice = {mid: n - 1 for mid, n in copies.items() if n > 1}
    assert all(n <= in_flight[mid] for mid, n in twice.items()), (twice, in_flight)
    assert sum(twice.values()) <= SETTINGS["DELIVERY_CONCURRENCY"] * 3
    for session, texts in sessions.items():
        seen = [m["message"] for m in sorted((m for m in stored if m["session_id"] == session),
                                            key=lambda m: m["session_seq"])
                if "#" in m["message"]]
        collapsed = [t for i, t in enumerate(seen) if i == 0 or t != seen[i - 1]]
        assert collapsed == texts, (session, seen)
    assert taken_over <= LEASE + 1 + 5, taken_over  # lease, a sweep, this test's polling
    print(f"duplicates {sum(twice.values())}, in flight at the kill {sum(in_flight.values())},"
          f" leases taken over after {taken_over:.1f} s")
