"""Delivery throughput: ``helpline-adapter worker`` processes against a raw ``requests``
pool of the same concurrency, and scale-out against a slow (100 ms) helpline.

Run: ``.venv/bin/python -m bench.delivery [--messages N] [--conversations C]``
(defaults 1000 across 100 conversations). Loopback only, bounded in time; PostgreSQL
and Redis from ``BENCH_DATABASE_URL``/``BENCH_REDIS_URL`` (or ``DATABASE_URL``/
``REDIS_URL``), else embedded ones, with a fresh database for the run; the shared Redis
is left as found (the queue's keys and every job it ran are deleted).

What is measured, in one run on one machine, with one formula for every rate:
``(count - 1) / (last completion - first completion)`` — start-up is counted for
neither side. For the worker a completion is a delivery's ``done_at`` (stamped just
before its outcome's commit); for the baseline, the moment its answer was read.

1. **worker** — N client messages are accepted through the API (gunicorn, PostgreSQL
   outbox) while no worker runs; then one worker process starts and delivers them to
   the sandbox OpenCHS helpline (request recording off), ``DELIVERY_CONCURRENCY`` (8)
   calls at a time.
2. **raw pool** — 8 threads, each with its own ``requests.Session``, post the same
   ``msg/`` bodies (same fields, fresh message ids) with the same Bearer token to the
   same helpline: the HTTP work alone at the worker's concurrency.
3. **scale-out** — the helpline answers after 100 ms; the same N messages delivered by
   1, 2 and 4 worker processes (one run each, fresh messages); the ratio at 2 workers
   against 1 (ideal 2.0; target >= 1.8). All processes share this machine's cores, which
   caps what more workers can add here, unlike separate machines.

The ratio worker/raw says what the engine's bookkeeping (claiming with a lease, the
per-conversation order, recording each outcome in PostgreSQL) costs on top of the HTTP
calls; the target is at least 0.5.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import requests
from sqlalchemy import create_engine, func, select

from adapter.config import normalise_database_url
from adapter.models import Delivery
from bench.servers import fresh_database, servers
from bench.stack import HELPLINE_PASSWORD, HELPLINE_USER, AdapterStack
from plugins.openchs.wire import message_body

TARGET = 0.5
SCALE_TARGET = 1.8
TIME_LIMIT = 90.0  # seconds for the workers to deliver everything before we give up
CONCURRENCY = 8  # the worker's DELIVERY_CONCURRENCY default, and the baseline's threads
SLOW_HELPLINE = 0.1  # seconds per answer in the scale-out runs
SCALE_OUT = (1, 2, 4)
SLOTS = (8, 32)  # one worker's DELIVERY_CONCURRENCY in the slots rows
SLOTS_TARGET = 0.8  # of the ideal, slots / latency
HELPLINE = {"channel": "WENI", "mime": "text/plain"}


def _post_messages(stack: AdapterStack, conversations: list[str], count: int,
                   prefix: str = "m") -> None:
    """``count`` client messages, round-robin over the conversations, 8 at a time."""
    def post(n: int) -> None:
        conversation = conversations[n % len(conversations)]
        response = stack.http.post(
            f"{stack.url}/v1/conversations/{conversation}/messages",
            json={"text": f"message number {n} from the child", "message_id": f"{prefix}-{n}"},
            timeout=30)
        if response.status_code != 202:
            raise RuntimeError(f"message {n}: {response.status_code} {response.text[:300]}")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(post, range(count)))


def _done_stamps(database_url: str, since_id: int) -> tuple[int, object, object]:
    engine = create_engine(normalise_database_url(database_url))
    query = select(func.count(), func.min(Delivery.done_at), func.max(Delivery.done_at)) \
        .where(Delivery.action == "message", Delivery.status == "done", Delivery.id > since_id)
    with engine.connect() as conn:
        row = conn.execute(query).one()
    engine.dispose()
    return row


def _last_id(database_url: str) -> int:
    engine = create_engine(normalise_database_url(database_url))
    with engine.connect() as conn:
        last = conn.execute(select(func.max(Delivery.id))).scalar() or 0
    engine.dispose()
    return last


def _worker_rate(stack: AdapterStack, database_url: str, count: int, since_id: int = 0,
                 workers: int = 1, **settings: object) -> tuple[float, float]:
    """Start ``workers`` workers; deliveries/s and seconds, from the rows' ``done_at``."""
    for _ in range(workers):
        stack.start_worker(**settings)
    deadline = time.monotonic() + TIME_LIMIT
    while True:
        done, first, last = _done_stamps(database_url, since_id)
        if done >= count:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {done}/{count} delivered within {TIME_LIMIT:.0f} s")
        time.sleep(0.2)
    stack.stop_workers()
    elapsed = (last - first).total_seconds()
    return (count - 1) / elapsed, elapsed


def _raw_rate(stack: AdapterStack, count: int, conversations: list[str],
              threads: int = CONCURRENCY) -> tuple[float, float]:
    """The same bodies from ``threads`` sessions at once; deliveries/s and seconds, from
    the first to the last answer read."""
    base = stack.helpline.api_url
    login = requests.post(base, auth=(HELPLINE_USER, HELPLINE_PASSWORD), timeout=10)
    login.raise_for_status()
    headers = {"Authorization": f"Bearer {login.json()['ss'][0][0]}"}
    bodies = [message_body(HELPLINE, session_id=conversations[n % len(conversations)],
                           message_id=f"raw-{n}", sender="pseudonym-of-the-child",
                           text=f"message number {n} from the child",
                           when=datetime.now(UTC)) for n in range(count)]
    local = threading.local()

    def post(body: dict) -> float:
        http = getattr(local, "http", None) or requests.Session()
        local.http = http
        response = http.post(base + "msg/", json=body, headers=headers, timeout=10)
        if response.status_code != 201:
            raise RuntimeError(f"raw pool: {response.status_code}")
        return time.perf_counter()

    with ThreadPoolExecutor(threads) as pool:
        answered = sorted(pool.map(post, bodies))
    elapsed = answered[-1] - answered[0]
    return (count - 1) / elapsed, elapsed


def _scale_out(stack: AdapterStack, database_url: str, ids: list[str], count: int,
               ) -> tuple[dict, dict]:
    """Against a helpline answering in 100 ms: rates with 1, 2 and 4 workers of 8 slots,
    and one worker of each of :data:`SLOTS` (its ideal: slots / latency)."""
    stack.helpline.client.set_faults(slow=SLOW_HELPLINE)
    rates, slots = {}, {}
    try:
        for workers in SCALE_OUT:
            since = _last_id(database_url)
            _post_messages(stack, ids, count, prefix=f"w{workers}")
            rates[workers], _ = _worker_rate(stack, database_url, count, since, workers)
        slots[CONCURRENCY] = rates[1]
        for size in SLOTS:
            if size == CONCURRENCY:
                continue
            since = _last_id(database_url)
            _post_messages(stack, ids, count * size // CONCURRENCY, prefix=f"s{size}")
            slots[size], _ = _worker_rate(stack, database_url, count * size // CONCURRENCY,
                                          since, DELIVERY_CONCURRENCY=size)
    finally:
        stack.helpline.client.set_faults(slow=0)
    return rates, slots


def run(messages: int, conversations: int, scale_messages: int = 600) -> dict:
    with servers() as found, fresh_database(found.postgres_server_url) as database_url:
        stack = AdapterStack(database_url, found.redis_url, Path(tempfile.mkdtemp()))
        try:
            # Conversations first, opened at the helpline by a worker we then stop, so
            # only message deliveries are in the measured run.
            ids = stack.start_conversations(conversations, "bench")
            stack.start_worker()
            _wait_all_done(database_url)
            stack.stop_workers()
            _post_messages(stack, ids, messages)
            sessions = _session_ids(database_url)
            worker_rate, worker_s = _worker_rate(stack, database_url, messages)
            raw_rate, raw_s = _raw_rate(stack, messages, sessions)
            scale, slots = _scale_out(stack, database_url, ids, scale_messages)
        finally:
            stack.close()
    return {"messages": messages, "conversations": conversations,
            "worker_rate": worker_rate, "worker_s": worker_s,
            "raw_rate": raw_rate, "raw_s": raw_s, "ratio": worker_rate / raw_rate,
            "scale": scale, "scale_messages": scale_messages, "slots": slots,
            "scale_ratio": scale[2] / scale[1]}


def _wait_all_done(database_url: str) -> None:
    engine = create_engine(normalise_database_url(database_url))
    pending = select(func.count()).where(Delivery.status != "done")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            if conn.execute(pending).scalar() == 0:
                break
        time.sleep(0.1)
    engine.dispose()


def _session_ids(database_url: str) -> list[str]:
    from adapter.models import Conversation

    engine = create_engine(normalise_database_url(database_url))
    with engine.connect() as conn:
        ids = list(conn.execute(select(Conversation.id)).scalars())
    engine.dispose()
    return ids


def report(result: dict) -> str:
    met = "yes" if result["ratio"] >= TARGET else "NO"
    rows = [
        ("one worker (helpline-adapter worker)", f"{result['worker_rate']:.0f}",
         f"{result['worker_s']:.2f}"),
        (f"raw pool of {CONCURRENCY} requests.Sessions", f"{result['raw_rate']:.0f}",
         f"{result['raw_s']:.2f}"),
    ]
    rows += [(f"{n} worker(s), helpline answering in 100 ms", f"{rate:.0f}", "")
             for n, rate in result["scale"].items()]
    rows += [(f"1 worker, {n} slots, 100 ms (ideal {n / SLOW_HELPLINE:.0f})", f"{rate:.0f}", "")
             for n, rate in result["slots"].items()]
    lines = [f"delivery: {result['messages']} messages across "
             f"{result['conversations']} conversations, loopback, PostgreSQL + Redis",
             "", f"{'':48} {'deliveries/s':>12} {'seconds':>8}"]
    lines += [f"{name:48} {rate:>12} {secs:>8}" for name, rate, secs in rows]
    lines += ["", f"ratio worker/raw: {result['ratio']:.2f} (target >= {TARGET}; met: {met})",
              f"scale-out at 2 workers: {result['scale_ratio']:.2f} (target >= {SCALE_TARGET})"]
    lines += [f"1 worker at {n} slots: {rate * SLOW_HELPLINE / n:.2f} of the ideal "
              f"(target >= {SLOTS_TARGET})" for n, rate in result["slots"].items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.delivery", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--conversations", type=int, default=100)
    args = parser.parse_args(argv)
    print(report(run(args.messages, args.conversations)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
