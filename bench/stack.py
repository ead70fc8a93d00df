"""The systems under test, as real processes configured the production way.

:class:`AdapterStack` is the adapter on PostgreSQL and Redis: ``helpline-adapter db
upgrade``, an API client, ``gunicorn -c gunicorn.conf.py wsgi:app`` (the README's
production settings: 2 sync workers) and, when asked, ``helpline-adapter worker``,
delivering to the sandbox OpenCHS helpline. :func:`bare_gunicorn` is the baseline
endpoint under the same gunicorn settings.

Two settings differ from a default deployment, on purpose: the per-client rate
limit is off (``ADAPTER_RATE_LIMIT_PER_MINUTE=0``: it exists to stop a runaway
client, and would stop the load generator), and logs are at WARNING, so writing a
JSON line per request to a pipe is not part of what is measured.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import requests
from redis import Redis
from rq import Queue, Worker

from adapter.sandbox.control import RunningSandbox, start_sandbox
from adapter.sandbox.process import ManagedProcess, free_port
from tests.support.sites import write_site

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
HELPLINE_USER, HELPLINE_PASSWORD = "sandbox", "sandbox-password"  # the sandbox's defaults
SITE = "ke"
CONTACT = "5b7b4a0e-8a4c-4f3e-9d55-0c7f2a1d9e01"

#: Process settings of every adapter process in the run (JSON-encoded into ADAPTER_*).
SETTINGS: dict[str, Any] = {
    "ADAPTER_RATE_LIMIT_PER_MINUTE": 0,
    "ADAPTER_LOG_LEVEL": "WARNING",
}


def gunicorn(app_path: str, env: dict[str, str], name: str) -> ManagedProcess:
    """``gunicorn -c gunicorn.conf.py APP`` on a free loopback port, started and ready."""
    port = free_port()
    process = ManagedProcess(
        [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", app_path],
        env={**env, "ADAPTER_BIND": f"127.0.0.1:{port}", "PYTHONPATH": str(ROOT)},
        ready_url=f"http://127.0.0.1:{port}/healthz", name=name, cwd=ROOT)
    process.start(timeout=30)
    process.url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    return process


def bare_gunicorn() -> ManagedProcess:
    """The baseline: :mod:`bench.bare_app` under the same gunicorn settings."""
    return gunicorn("bench.bare_app:app", {}, "bare-gunicorn")


class AdapterStack:
    """One adapter deployment on a fresh database, delivering to a sandbox helpline."""

    def __init__(self, database_url: str, redis_url: str, folder: Path) -> None:
        self.redis_url = redis_url
        self.queue_name = f"bench-{uuid.uuid4().hex[:8]}"  # a shared Redis keeps runs apart
        self.helpline: RunningSandbox = start_sandbox("helpline", "--no-record-requests")
        countries = folder / "countries"
        write_site(countries, SITE, name="Benchmark site", plugin="openchs",
                   routing={"locations": ["Nairobi"]},
                   helpline={"base_url": self.helpline.api_url,
                             "username": "${BENCH_HELPLINE_USER}",
                             "password": "${BENCH_HELPLINE_PASSWORD}"})
        self.env = {
            "ADAPTER_DATABASE_URL": database_url,
            "ADAPTER_REDIS_URL": redis_url,
            "ADAPTER_COUNTRIES_DIR": str(countries),
            "ADAPTER_SECRET_KEY": "bench-secret",
            "ADAPTER_DELIVERY_QUEUE": self.queue_name,
            "BENCH_HELPLINE_USER": HELPLINE_USER,
            "BENCH_HELPLINE_PASSWORD": HELPLINE_PASSWORD,
            "PYTHONPATH": str(ROOT),
            **{name: json.dumps(value) for name, value in SETTINGS.items()},
        }
        self.cli("db", "upgrade")
        self.key = self.cli("clients", "create", f"bench-{uuid.uuid4().hex[:6]}").splitlines()[-1]
        self.web = gunicorn("wsgi:app", self.env, "adapter-gunicorn")
        self.url: str = self.web.url  # type: ignore[attr-defined]
        self.worker: ManagedProcess | None = None
        self.workers: list[ManagedProcess] = []
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Token {self.key}"

    def cli(self, *args: str) -> str:
        """``helpline-adapter ARGS`` against this deployment; its standard output."""
        done = subprocess.run([str(BIN / "helpline-adapter"), *args], cwd=ROOT,
                              env={**os.environ, **self.env}, capture_output=True, text=True,
                              timeout=120, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"helpline-adapter {' '.join(args)}: {done.stderr[-2000:]}")
        return done.stdout.strip()

    def start_worker(self, **settings: object) -> ManagedProcess:
        """One delivery worker, ready once RQ has registered it on our queue; ``settings``
        are ``ADAPTER_*`` values for it alone (``DELIVERY_CONCURRENCY=32``)."""
        redis = Redis.from_url(self.redis_url)
        queue = Queue(self.queue_name, connection=redis)
        before = Worker.count(queue=queue)
        env = {**self.env, **{f"ADAPTER_{k}": json.dumps(v) for k, v in settings.items()}}
        self.worker = ManagedProcess([str(BIN / "helpline-adapter"), "worker"], env=env,
                                     name="worker", cwd=ROOT,
                                     ready_check=lambda: Worker.count(queue=queue) > before)
        self.worker.start(timeout=30)
        self.workers.append(self.worker)
        return self.worker

    def stop_workers(self) -> None:
        for worker in self.workers:
            worker.close()
        self.workers.clear()
        self.worker = None

    def start_conversations(self, count: int, prefix: str) -> list[str]:
        """Open ``count`` conversations (explicit bodies, no first message); their ids."""
        ids = []
        for n in range(count):
            body = {"conversation_id": f"{prefix}-{n}", "site": SITE,
                    "contact": {"uuid": CONTACT}}
            response = self.http.post(f"{self.url}/v1/conversations", json=body, timeout=30)
            if response.status_code not in (200, 201):
                raise RuntimeError(f"start failed: {response.status_code} {response.text[:500]}")
            ids.append(response.json()["conversation_id"])
        return ids

    def close(self) -> None:
        self.stop_workers()
        self.web.close()
        self.helpline.stop()
        forget_queue(Redis.from_url(self.redis_url), self.queue_name)


def forget_queue(redis: Redis, queue_name: str) -> int:
    """Leave a shared Redis as found: the queue's registries and every job it ran
    (``rq:job:<id>`` keys do not name their queue; their ``origin`` field does)."""
    keys = [*redis.scan_iter(f"*{queue_name}*")]
    for pattern, field in (("rq:job:*", "origin"), ("rq:worker:*", "queues")):
        for key in redis.scan_iter(pattern, count=1000):
            if redis.type(key) == b"hash" and redis.hget(key, field) == queue_name.encode():
                keys.append(key)  # a stopped worker's hash would only expire
    redis.srem("rq:queues", f"rq:queue:{queue_name}")
    for key in ("rq:workers", f"rq:workers:{queue_name}"):
        redis.srem(key, *[k for k in keys if k.startswith(b"rq:worker:")] or [b"-"])
    if keys:
        redis.delete(*keys)
    return len(keys)
