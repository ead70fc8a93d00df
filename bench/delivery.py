"""Delivery throughput: one ``helpline-adapter worker`` against a raw ``requests`` loop.

Run: ``.venv/bin/python -m bench.delivery [--messages N] [--conversations C]``
(defaults 1000 across 100 conversations). Loopback only, bounded in time; PostgreSQL
and Redis from ``BENCH_DATABASE_URL``/``BENCH_REDIS_URL`` (or ``DATABASE_URL``/
``REDIS_URL``), else embedded ones, with a fresh database for the run.

What is measured, in one run on one machine:

1. **worker** — N client messages are accepted through the API (gunicorn, PostgreSQL
   outbox) while no worker runs; then one worker process starts and delivers them to
   the sandbox OpenCHS helpline (request recording off). The rate is taken from the
   deliveries' own ``done_at`` stamps (first to last), so neither the worker's start-up
   nor our polling is counted.
2. **raw loop** — a single ``requests.Session`` posts the same ``msg/`` bodies (same
   fields, fresh message ids) with the same Bearer token to the same helpline, one
   after the other: the floor cost of the HTTP work alone.

The ratio worker/raw says what the engine's bookkeeping (claiming with a lease, the
per-conversation order, recording the outcome in PostgreSQL) costs on top of the
HTTP calls; the target is at least 0.5.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
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
TIME_LIMIT = 90.0  # seconds for the worker to deliver everything before we give up
HELPLINE = {"channel": "WENI", "mime": "text/plain"}


def _post_messages(stack: AdapterStack, conversations: list[str], count: int) -> None:
    """``count`` client messages, round-robin over the conversations, 8 at a time."""
    def post(n: int) -> None:
        conversation = conversations[n % len(conversations)]
        response = stack.http.post(
            f"{stack.url}/v1/conversations/{conversation}/messages",
            json={"text": f"message number {n} from the child", "message_id": f"m-{n}"},
            timeout=30)
        if response.status_code != 202:
            raise RuntimeError(f"message {n}: {response.status_code} {response.text[:300]}")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(post, range(count)))


def _worker_rate(stack: AdapterStack, database_url: str, count: int) -> tuple[float, float]:
    """Start one worker; deliveries/s and seconds, from the rows' ``done_at`` stamps."""
    engine = create_engine(normalise_database_url(database_url))
    messages = select(func.count(), func.min(Delivery.done_at), func.max(Delivery.done_at)) \
        .where(Delivery.action == "message", Delivery.status == "done")
    stack.start_worker()
    deadline = time.monotonic() + TIME_LIMIT
    while True:
        with engine.connect() as conn:
            done, first, last = conn.execute(messages).one()
        if done >= count:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {done}/{count} delivered within {TIME_LIMIT:.0f} s")
        time.sleep(0.2)
    engine.dispose()
    elapsed = (last - first).total_seconds()
    return (count - 1) / elapsed, elapsed


def _raw_rate(stack: AdapterStack, count: int, conversations: list[str]) -> tuple[float, float]:
    """The same bodies from one ``requests.Session`` loop; deliveries/s and seconds."""
    base = stack.helpline.api_url
    http = requests.Session()
    login = http.post(base, auth=(HELPLINE_USER, HELPLINE_PASSWORD), timeout=10)
    login.raise_for_status()
    headers = {"Authorization": f"Bearer {login.json()['ss'][0][0]}"}
    bodies = [message_body(HELPLINE, session_id=conversations[n % len(conversations)],
                           message_id=f"raw-{n}", sender="pseudonym-of-the-child",
                           text=f"message number {n} from the child",
                           when=datetime.now(UTC)) for n in range(count)]
    started = time.perf_counter()
    for body in bodies:
        response = http.post(base + "msg/", json=body, headers=headers, timeout=10)
        if response.status_code != 201:
            raise RuntimeError(f"raw loop: {response.status_code}")
    elapsed = time.perf_counter() - started
    return count / elapsed, elapsed


def run(messages: int, conversations: int) -> dict:
    with servers() as found, fresh_database(found.postgres_server_url) as database_url:
        stack = AdapterStack(database_url, found.redis_url, Path(tempfile.mkdtemp()))
        try:
            # Conversations first, opened at the helpline by a worker we then stop, so
            # only message deliveries are in the measured run.
            ids = stack.start_conversations(conversations, "bench")
            worker = stack.start_worker()
            _wait_all_done(database_url)
            worker.stop()
            _post_messages(stack, ids, messages)
            sessions = _session_ids(database_url)
            worker_rate, worker_s = _worker_rate(stack, database_url, messages)
            raw_rate, raw_s = _raw_rate(stack, messages, sessions)
        finally:
            stack.close()
    return {"messages": messages, "conversations": conversations,
            "worker_rate": worker_rate, "worker_s": worker_s,
            "raw_rate": raw_rate, "raw_s": raw_s, "ratio": worker_rate / raw_rate}


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
        ("raw requests.Session loop", f"{result['raw_rate']:.0f}", f"{result['raw_s']:.2f}"),
    ]
    lines = [f"delivery: {result['messages']} messages across "
             f"{result['conversations']} conversations, loopback, PostgreSQL + Redis",
             "", f"{'':40} {'deliveries/s':>12} {'seconds':>8}"]
    lines += [f"{name:40} {rate:>12} {secs:>8}" for name, rate, secs in rows]
    lines += ["", f"ratio worker/raw: {result['ratio']:.2f} (target >= {TARGET}; met: {met})"]
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
