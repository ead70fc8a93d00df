"""PostgreSQL and Redis for a benchmark run: given by the environment, else embedded.

``BENCH_DATABASE_URL``/``DATABASE_URL`` (a PostgreSQL server) and
``BENCH_REDIS_URL``/``REDIS_URL`` win; without them the embedded servers of the test
suite are started (``tests.support.servers``, reused rather than copied). Each run
gets a database of its own, dropped afterwards, so a run never sees another's rows.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support import servers as test_servers


@dataclass
class Servers:
    """Where the run's PostgreSQL server and Redis are, and what they are."""

    postgres_server_url: str  # the server (its maintenance database), not the run's
    redis_url: str
    embedded: bool


def _env(*names: str) -> str | None:
    return next((os.environ[name] for name in names if os.environ.get(name)), None)


@contextlib.contextmanager
def servers() -> Iterator[Servers]:
    """Yield the servers; stop the embedded ones (if any) on the way out."""
    base = Path(tempfile.mkdtemp(prefix="adapter-bench-"))
    # Registered before an embedded PostgreSQL registers its own stop-at-exit, so
    # (atexit being last-in, first-out) the folder goes after the server has stopped.
    atexit.register(shutil.rmtree, base, ignore_errors=True)
    redis_server = None
    try:
        pg_url = _env("BENCH_DATABASE_URL", "DATABASE_URL")
        embedded = False
        if not (pg_url and pg_url.startswith("postgres")):
            pg_url, pg = test_servers.postgres_server_url(base)
            embedded = pg is not None
        redis_url = _env("BENCH_REDIS_URL", "REDIS_URL")
        if not redis_url:
            redis_url, redis_server = test_servers.redis_url(base)
        yield Servers(pg_url, redis_url, embedded=embedded or redis_server is not None)
    finally:
        if redis_server is not None:
            with contextlib.suppress(Exception):
                redis_server.stop()


@contextlib.contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """A new, empty database on the server for the block; dropped after it."""
    url, name = test_servers.create_database(server_url)
    try:
        yield url
    finally:
        test_servers.drop_database(server_url, name)


def versions(postgres_url: str, redis_url: str) -> dict[str, str]:
    """Server versions for the report."""
    import psycopg
    from redis import Redis

    plain = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain) as conn:
        pg = conn.execute("SHOW server_version").fetchone()[0]
    info = Redis.from_url(redis_url).info("server")
    redis = f"{info.get('redis_version')}"
    if info.get("valkey_version"):
        redis = f"valkey {info['valkey_version']}"
    return {"postgresql": pg, "redis": redis}
