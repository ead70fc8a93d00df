"""How long a /metrics scrape takes over a large history, and the plan of each query.

``python -m bench.metrics_scrape`` fills a fresh database (schema from the Alembic
migrations) with ``--rows`` messages of history in bulk — 1 conversation per 10
messages, a delivery per message plus one per conversation, a case per 20
conversations, over 3 sites, in every state — then scrapes ``/metrics`` in process
(``--repeat`` times, the median reported) on SQLite and on PostgreSQL, and prints each
query's plan (EXPLAIN QUERY PLAN / EXPLAIN). See docs/monitoring/README.md.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

from sqlalchemy import event, insert, text

SITES = ("ke", "ug", "tz")


def _countries() -> str:
    from tests.support.sites import write_site

    folder = Path(tempfile.mkdtemp(prefix="bench-countries-"))
    for code in SITES:
        write_site(folder, code, name=code, plugin="loopback",
                   routing={"locations": [code]}, helpline={"url": "http://127.0.0.1:9/"})
    return str(folder)


def fill(app, rows: int) -> None:
    from adapter.extensions import db
    from adapter.models import Case, Conversation, Delivery, Message, utcnow

    rng = random.Random(18)
    now = utcnow()
    conversations, messages, deliveries, cases = [], [], [], []
    for c in range(rows // 10):
        cid = str(uuid.uuid4())
        site = SITES[c % len(SITES)]
        created = now - timedelta(seconds=rng.uniform(60, 30 * 86400))
        state = rng.choices(["closed", "active", "waiting", "requested"], [90, 6, 3, 1])[0]
        assigned = created + timedelta(seconds=rng.uniform(5, 900)) \
            if state in ("closed", "active") else None
        conversations.append(dict(
            id=cid, namespace="bench", external_id=cid, site=site, state=state,
            client_pseudonym=f"client-{c}", created_at=created, updated_at=created,
            waiting_since=created, assigned_at=assigned,
            no_counsellor_at=created + timedelta(seconds=300) if assigned is None
            or (assigned - created).total_seconds() > 300 else None))
        deliveries.append(dict(lane=f"conv:{cid}", site=site, target="helpline",
                               action="open", conversation_id=cid, status="done",
                               attempts=1, due_at=created, created_at=created,
                               done_at=created))
        for m in range(10):
            mid = str(uuid.uuid4())
            accepted = created + timedelta(seconds=m * 30)
            open_ = state != "closed" and m == 9 and rng.random() < 0.3
            sent = None if open_ else accepted + timedelta(seconds=rng.expovariate(2))
            direction = "to_helpline" if m % 2 == 0 else "to_client"
            messages.append(dict(
                id=mid, conversation_id=cid, direction=direction,
                sender_message_id=f"s{m}", text="bench text " * 5, status="accepted"
                if open_ else "delivered", created_at=accepted, sent_at=sent,
                delivered_at=sent))
            status = "pending" if open_ else rng.choices(["done", "failed"], [995, 5])[0]
            deliveries.append(dict(
                lane=f"conv:{cid}", site=site,
                target="helpline" if direction == "to_helpline" else "chatbot",
                action="message", conversation_id=cid, message_id=mid, status=status,
                attempts=rng.choices([1, 2, 3, 6], [90, 6, 3, 1])[0], due_at=accepted,
                created_at=accepted, done_at=sent))
        if c % 20 == 0:
            cases.append(dict(id=str(uuid.uuid4()), namespace="bench", site=site,
                              status=rng.choice(["created", "created", "failed", "pending"]),
                              created_at=created, updated_at=created))
    with app.app_context():
        for model, values in ((Conversation, conversations), (Message, messages),
                              (Delivery, deliveries), (Case, cases)):
            for start in range(0, len(values), 5000):
                db.session.execute(insert(model), values[start:start + 5000])
        db.session.commit()
        db.session.execute(text("ANALYZE"))
        db.session.commit()
    print(f"  rows: {len(conversations)} conversations, {len(messages)} messages, "
          f"{len(deliveries)} deliveries, {len(cases)} cases")


def measure(url: str, redis_url: str, rows: int, repeat: int, plans: bool) -> float:
    from adapter import create_app
    from adapter.auth import hash_secret, new_key
    from adapter.database_upgrade import upgrade_database
    from adapter.extensions import db
    from adapter.models import ApiClient
    from tests.support import loopback_plugin

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "REDIS_URL": redis_url,
                      "COUNTRIES_DIR": _countries(), "LOG_LEVEL": "WARNING",
                      "DELIVERY_QUEUE": f"bench-{uuid.uuid4().hex[:8]}",
                      "SECRET_KEY": "bench", "RATE_LIMIT_PER_MINUTE": 0},
                     plugins=(loopback_plugin,))
    upgrade_database(app)
    fill(app, rows)
    key = new_key()
    with app.app_context():
        db.session.add(ApiClient(name="bench-monitor", role="monitor",
                                 key_hash=hash_secret(key)))
        db.session.commit()
    client = app.test_client()
    headers = {"Authorization": f"Token {key}"}
    statements: list[tuple[str, object]] = []
    with app.app_context():
        engine = db.engine

    def record(conn, cursor, statement, parameters, context, executemany):
        conn.info["started"] = time.perf_counter()

    def done(conn, cursor, statement, parameters, context, executemany):
        if "FROM" in statement and "api_clients" not in statement:
            statements.append((statement, parameters,
                               time.perf_counter() - conn.info.pop("started")))

    client.get("/metrics", headers=headers)  # warm: connections, caches
    timings = []
    for n in range(repeat):
        if n == 0:
            event.listen(engine, "before_cursor_execute", record)
            event.listen(engine, "after_cursor_execute", done)
        started = time.perf_counter()
        answer = client.get("/metrics", headers=headers)
        timings.append(time.perf_counter() - started)
        if n == 0:
            event.remove(engine, "before_cursor_execute", record)
            event.remove(engine, "after_cursor_execute", done)
        assert answer.status_code == 200, answer.status_code
    if plans:
        with engine.connect() as conn:
            sqlite = engine.dialect.name == "sqlite"
            for statement, parameters, took in statements:
                if "helpline_adapter" in statement or not statement.lstrip().startswith(
                        "SELECT"):
                    continue
                explain = ("EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN ") + statement
                raw = conn.connection.dbapi_connection.cursor()
                raw.execute(explain, parameters)
                plan = [" ".join(str(c) for c in row) for row in raw.fetchall()]
                print(f"   {took * 1000:6.1f} ms", " ".join(statement.split())[:150])
                for line in plan:
                    print("       ", line)
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000, help="messages of history")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--plans", action="store_true", help="print each query's plan")
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    args = parser.parse_args()
    from bench import servers
    from tests.support import servers as test_servers

    with servers.servers() as found:
        if args.only != "postgresql":
            path = Path(tempfile.mkdtemp(prefix="bench-metrics-")) / "adapter.sqlite3"
            print("sqlite:")
            took = measure(f"sqlite:///{path}", found.redis_url, args.rows, args.repeat,
                           args.plans)
            print(f"  /metrics scrape: {took * 1000:.0f} ms (median of {args.repeat})")
        if args.only != "sqlite":
            with test_servers.own_database(found.postgres_server_url) as url:
                print("postgresql:")
                took = measure(url, found.redis_url, args.rows, args.repeat, args.plans)
                print(f"  /metrics scrape: {took * 1000:.0f} ms (median of {args.repeat})")


if __name__ == "__main__":
    main()
