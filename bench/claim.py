"""Claim cost against history: the same backlog (200 due lane heads) under 1k and under
1M rows of done history, generated in bulk (``generate_series``), statistics up to date
(``ANALYZE``), as a deployment's table has them between autovacuums.

Per history: 100 rounds of ``claim(limit=50)`` then ``due_exists()``, the claimed rows made
pending again between rounds (not timed). The two histories alternate round by round, so
drift on a shared machine hits both alike. Figures are medians with the 10th-90th
percentile spread; the ratio is 1k-time / 1M-time (1.0: history costs nothing).
"""

from __future__ import annotations

import statistics
import time

from sqlalchemy import text

from bench.report import Row
from bench.servers import fresh_database

HISTORIES = (1_000, 1_000_000)
ROUNDS = 100
LANES = 200


def _fill(app, history: int) -> None:
    from adapter.extensions import db

    with app.app_context():
        db.session.execute(text(f"""
            INSERT INTO deliveries (lane, site, target, action, status, attempts, due_at,
                                    created_at, done_at)
            SELECT 'lane-' || (g % 5000), 'bench', 'helpline', 'message', 'done', 1,
                   now(), now(), now()
            FROM generate_series(1, {int(history)}) g"""))  # noqa: S608 (an int)
        db.session.execute(text(f"""
            INSERT INTO deliveries (lane, site, target, action, status, attempts, due_at,
                                    created_at)
            SELECT 'lane-' || g, 'bench', 'helpline', 'message', 'pending', 0,
                   now() - interval '1 minute', now()
            FROM generate_series(1, {LANES}) g"""))  # noqa: S608 (an int)
        db.session.commit()
        db.session.execute(text("ANALYZE deliveries"))
        db.session.commit()


def _round(app) -> tuple[float, float]:
    from adapter.delivery.engine import claim, due_exists
    from adapter.extensions import db

    with app.app_context():
        started = time.perf_counter()
        ids = claim(app, 50)
        claimed = time.perf_counter() - started
        assert len(ids) == 50, len(ids)
        db.session.execute(text(
            "UPDATE deliveries SET status = 'pending', lease_until = NULL, attempts = 0 "
            "WHERE status = 'sending'"))
        db.session.commit()
        started = time.perf_counter()
        assert due_exists()
        return claimed, time.perf_counter() - started


def _spread(values: list[float]) -> str:
    deciles = statistics.quantiles(values, n=10)
    return f"{statistics.median(values) * 1000:.2f} ms ({deciles[0] * 1000:.2f}-" \
           f"{deciles[-1] * 1000:.2f})"


def run(postgres_server_url: str, redis_url: str, folder) -> list[Row]:
    from adapter import create_app
    from adapter.database_upgrade import upgrade_database
    from adapter.extensions import db

    folder.mkdir(parents=True, exist_ok=True)
    timings: dict[int, tuple[list[float], list[float]]] = {h: ([], []) for h in HISTORIES}
    with fresh_database(postgres_server_url) as small, fresh_database(postgres_server_url) \
            as large:
        apps = {}
        for history, url in zip(HISTORIES, (small, large), strict=True):
            app = create_app({"SQLALCHEMY_DATABASE_URI": url, "REDIS_URL": redis_url,
                              "COUNTRIES_DIR": str(folder), "LOG_LEVEL": "WARNING"})
            upgrade_database(app)
            _fill(app, history)
            apps[history] = app
        try:
            for _ in range(ROUNDS):
                for history, app in apps.items():
                    claimed, due = _round(app)
                    timings[history][0].append(claimed)
                    timings[history][1].append(due)
        finally:
            for app in apps.values():
                with app.app_context():
                    db.session.remove()
                    db.engine.dispose()
    rows = []
    for index, what in ((0, "claim of 50 lane heads"), (1, "due_exists")):
        small_t, large_t = timings[HISTORIES[0]][index], timings[HISTORIES[1]][index]
        ratio = statistics.median(small_t) / statistics.median(large_t)
        rows.append(Row("claim", f"{what}, 1M done rows (baseline: 1k)", _spread(large_t),
                        baseline=_spread(small_t), ratio=f"{ratio:.2f}", target=">= 0.90",
                        met=ratio >= 0.9))
    return rows
