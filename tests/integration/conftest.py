"""The whole system as real processes: gunicorn, delivery workers and both sandbox peers.

One stack per test package (starting gunicorn and a worker costs seconds), on a database
of its own, stopped when the package's tests are done. Each test gets it clean (tables
emptied, sandboxes reset, pacing forgotten, one live worker) through the function-scoped
``stack`` fixture. Integration tests run on PostgreSQL only.

Processes are configured the production way, with ``ADAPTER_*`` environment variables,
but with a retry schedule, lease and sweep interval short enough for a test to watch a
retry, a lease expiring and an assignment timeout within seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests
from redis import Redis
from sqlalchemy import create_engine, select

from adapter.config import normalise_database_url
from adapter.models import Delivery
from adapter.sandbox.control import RunningSandbox, start_sandbox
from adapter.sandbox.media import MediaHost
from adapter.sandbox.process import ManagedProcess, free_port
from tests.support import servers
from tests.support.sites import write_site
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
T = TypeVar("T")

CONTACT = "5b7b4a0e-8a4c-4f3e-9d55-0c7f2a1d9e01"
FLOWS = {
    "assigned": "0b1c7a52-6f5e-4a59-9f51-6a3a0a8e2f01",
    "closed": "0b1c7a52-6f5e-4a59-9f51-6a3a0a8e2f02",
    "no_counsellor": "0b1c7a52-6f5e-4a59-9f51-6a3a0a8e2f03",
    "delivered": "0b1c7a52-6f5e-4a59-9f51-6a3a0a8e2f04",
    "message": "0b1c7a52-6f5e-4a59-9f51-6a3a0a8e2f05",
}
RAPIDPRO_TOKEN = "rp-integration-token"
HELPLINE_USER, HELPLINE_PASSWORD = "adapter-ke", "helpline-secret"
CALLBACK_USER, CALLBACK_PASSWORD = "openchs-ke", "callback-secret"

#: Short timings, so retries, leases and timeouts happen while a test watches.
PROCESS_SETTINGS = {
    "ADAPTER_RETRY_SCHEDULE": [0.3, 0.6, 1, 1, 1, 1, 1, 1],
    "ADAPTER_RETRY_JITTER": 0,
    "ADAPTER_DELIVERY_LEASE_SECONDS": 3,
    "ADAPTER_SWEEP_INTERVAL_SECONDS": 0.3,
    "ADAPTER_DRAIN_BUDGET_SECONDS": 2.0,
    "ADAPTER_HTTP_READ_TIMEOUT": 8,
    "ADAPTER_LOG_LEVEL": "INFO",
}
#: Everything but the API clients, which live for the session.
TABLES = "deliveries, conversations, messages, idempotency_records, cases, audit_events, " \
         "api_tokens"  # deliveries first: the relay locks a delivery, then its conversation


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@dataclass
class Stack:
    """The running system and what a test needs to drive it."""

    url: str
    key: str
    env: dict[str, str]
    helpline: RunningSandbox
    rapidpro: RunningSandbox
    gunicorn: ManagedProcess
    database_url: str
    redis_url: str
    workers: list[ManagedProcess] = field(default_factory=list)
    media: MediaHost | None = None  # the chatbot's media host, for the re-hosting site

    def __post_init__(self) -> None:
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Token {self.key}"
        self.engine = create_engine(normalise_database_url(self.database_url))

    # -- the API ------------------------------------------------------------------------
    def post(self, path: str, body: dict, **headers: str) -> requests.Response:
        return self.http.post(self.url + path, json=body, headers=headers, timeout=10)

    def get(self, path: str) -> requests.Response:
        return self.http.get(self.url + path, timeout=10)

    def start(self, conversation_id: str, text: str | None = "I need help", site: str = "ke",
              message_id: str | None = None) -> dict:
        """Escalate a child the way a RapidPro Call Webhook node does (default body)."""
        body: dict[str, Any] = {
            "contact": {"uuid": CONTACT, "name": "Child", "urn": "tel:+254700000001"},
            "flow": {"uuid": "f0a1b2c3-0000-4000-8000-000000000001", "name": "Escalate"},
            "results": {"conversation_id": {"value": conversation_id, "category": "All"}},
            "site": site,
        }
        if text is not None:
            body["text"] = text
            body["message_id"] = message_id or f"{conversation_id}-m0"
        response = self.post("/v1/conversations", body)
        assert response.status_code == 201, response.text
        return response.json()

    def send(self, conversation_id: str, text: str, message_id: str) -> dict:
        response = self.post(f"/v1/conversations/{conversation_id}/messages",
                             {"text": text, "message_id": message_id})
        assert response.status_code == 202, response.text
        return response.json()

    def conversation(self, conversation_id: str) -> dict:
        response = self.get(f"/v1/conversations/{conversation_id}")
        assert response.status_code == 200, response.text
        return response.json()

    # -- the database, read-only, to see what the engine recorded -------------------------
    def deliveries(self, **where: Any) -> list[dict]:
        table = Delivery.__table__
        query = select(table).where(*(table.c[name] == value for name, value in where.items()))
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query.order_by(table.c.id))]

    def wait_for(self, check: Callable[[], T], timeout: float = 10.0,
                 what: str = "condition") -> T:
        return wait_until(check, timeout, what)

    # -- the sandboxes --------------------------------------------------------------------
    def helpline_messages(self, **filters: Any) -> list[dict]:
        return self.helpline.client.records("messages", **filters)

    def helpline_requests(self, path_part: str = "msg") -> list[dict]:
        return [r for r in self.helpline.client.records("requests") if path_part in r["path"]]

    # -- processes ------------------------------------------------------------------------
    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run ``helpline-adapter ARGS`` as an operator would, against this stack."""
        result = subprocess.run([str(BIN / "helpline-adapter"), *args], cwd=ROOT,
                                env=self.env, capture_output=True, text=True, timeout=60)
        if check and result.returncode != 0:
            pytest.fail(f"helpline-adapter {' '.join(args)} failed: {result.stderr[-2000:]}")
        return result

    def start_worker(self) -> ManagedProcess:
        worker = ManagedProcess([str(BIN / "helpline-adapter"), "worker"], env=self.env,
                                name="worker", cwd=ROOT, ready_log="worker.started")
        worker.start(timeout=20)
        self.workers.append(worker)
        return worker

    def live_workers(self) -> list[ManagedProcess]:
        return [w for w in self.workers if w.is_running()]

    def reset(self) -> None:
        """Back to a clean slate between tests; leaves exactly one worker running."""
        for worker in self.workers[1:]:
            worker.close()
        self.workers[1:] = []
        if not self.workers[0].is_running():
            self.workers[0].start(timeout=20)
        self.helpline.client.reset()
        self.rapidpro.client.reset()
        servers.empty_tables(self.engine, TABLES)
        redis = Redis.from_url(self.redis_url)
        for key in redis.scan_iter("helpline-adapter:pace:*"):
            redis.delete(key)

    def close(self) -> None:
        for worker in self.workers:
            worker.close()
        self.gunicorn.close()
        self.helpline.stop()
        self.rapidpro.stop()
        if self.media is not None:
            self.media.stop()
        self.engine.dispose()


def _write_countries(folder: Path, helpline_api: str, rapidpro_url: str,
                     adapter_url: str = "", media: MediaHost | None = None) -> None:
    """Three openchs sites on the one sandbox helpline and the one sandbox RapidPro.

    ``ke`` sends counsellor messages as flow starts (so the chatbot learns our message
    ids and can acknowledge them), ``bc`` as plain broadcasts (and takes only images,
    audio and PDFs, three at most), and at ``nc`` nobody ever answers in time. ``rh``
    re-hosts attachments (fetched from ``media``, the one private host:port it may reach,
    served back at ``adapter_url``).
    """
    rapidpro = {"base_url": rapidpro_url, "token": "${RAPIDPRO_TOKEN}", "flows": FLOWS,
                "rate_per_hour": 360000}
    helpline = {"base_url": helpline_api, "username": "${KE_HELPLINE_USER}",
                "password": "${KE_HELPLINE_PASSWORD}",
                "callback_username": "${KE_CALLBACK_USER}",
                "callback_password": "${KE_CALLBACK_PASSWORD}"}
    write_site(folder, "ke", name="Kenya", plugin="openchs",
               routing={"locations": ["Nairobi"], "urn_prefixes": ["tel:+254"]},
               helpline=helpline, rapidpro={**rapidpro, "message_mode": "flow_starts"},
               policies={"assignment_timeout": 300})
    write_site(folder, "bc", name="Broadcasts", plugin="openchs",
               routing={"locations": ["Mombasa"]},
               helpline=helpline, rapidpro={**rapidpro, "message_mode": "broadcasts"},
               policies={"assignment_timeout": 300},
               attachments={"max_count": 3,
                            "allowed_types": ["image/*", "audio/*", "application/pdf"]})
    write_site(folder, "nc", name="Nobody comes", plugin="openchs",
               routing={"locations": ["Nowhere"]},
               helpline=helpline, rapidpro=rapidpro, policies={"assignment_timeout": 1})
    if media is not None:
        write_site(folder, "rh", name="Re-hosting", plugin="openchs",
                   routing={"locations": ["Rehostville"]}, helpline=helpline,
                   rapidpro={**rapidpro, "message_mode": "broadcasts"},
                   attachments={"allowed_types": ["image/*", "audio/*"], "rehost": {
                       "enabled": True, "directory": str(folder.parent / "media-rh"),
                       "public_url": f"{adapter_url}/v1/media/rh/", "max_bytes": 50_000,
                       "connect_timeout": 1, "read_timeout": 2, "total_timeout": 4,
                       "unsafe_allow_private_hosts": [f"127.0.0.1:{media.port}"]}})


def start_peers(adapter_url: str, countries: Path, media: MediaHost | None = None,
                ) -> tuple[RunningSandbox, RunningSandbox]:
    """The sandbox helpline (calling back to ``adapter_url``) and RapidPro, and the
    countries folder pointing at them."""
    helpline = start_sandbox(
        "helpline", "--callback-url", f"{adapter_url}/v1/sites/ke/openchs/",
        env={"SANDBOX_HELPLINE_USERNAME": HELPLINE_USER,
             "SANDBOX_HELPLINE_PASSWORD": HELPLINE_PASSWORD,
             "SANDBOX_HELPLINE_CALLBACK_USERNAME": CALLBACK_USER,
             "SANDBOX_HELPLINE_CALLBACK_PASSWORD": CALLBACK_PASSWORD})
    rapidpro = start_sandbox("rapidpro", "--token", f"{RAPIDPRO_TOKEN}=integration-org",
                             *(f"--flow={flow}={event}" for event, flow in FLOWS.items()))
    _write_countries(countries, helpline.api_url, rapidpro.url, adapter_url, media)
    return helpline, rapidpro


def adapter_env(database_url: str, redis_url: str, countries: Path, name: str,
                settings: dict[str, Any]) -> dict[str, str]:
    """The environment of every adapter process of a test stack (the ke/bc/nc sites)."""
    return {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "ADAPTER_COUNTRIES_DIR": str(countries),
        "ADAPTER_SECRET_KEY": f"{name}-secret",
        "ADAPTER_DELIVERY_QUEUE": f"{name}-{uuid.uuid4().hex[:8]}",
        "RAPIDPRO_TOKEN": RAPIDPRO_TOKEN,
        "KE_HELPLINE_USER": HELPLINE_USER,
        "KE_HELPLINE_PASSWORD": HELPLINE_PASSWORD,
        "KE_CALLBACK_USER": CALLBACK_USER,
        "KE_CALLBACK_PASSWORD": CALLBACK_PASSWORD,
        "PYTHONPATH": str(ROOT),
        **{key: json.dumps(value) for key, value in settings.items()},
    }


def migrate_and_create_client(full_env: dict[str, str], client: str) -> str:
    """``db upgrade`` and ``clients create`` as an operator runs them; the new key."""
    subprocess.run([str(BIN / "helpline-adapter"), "db", "upgrade"], cwd=ROOT, env=full_env,
                   check=True, capture_output=True, timeout=60)
    created = subprocess.run([str(BIN / "helpline-adapter"), "clients", "create", client],
                             cwd=ROOT, env=full_env, check=True, capture_output=True,
                             text=True, timeout=60)
    return created.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="package")
def stack_database(postgres_server):
    """The stack's own database: its relay sweeps the tables all the time, so it must
    never share them with in-process tests (nor meet their TRUNCATE)."""
    with servers.own_database(postgres_server) as url:
        yield url


@pytest.fixture(scope="package")
def _stack(tmp_path_factory, stack_database, redis_url):
    base = tmp_path_factory.mktemp("stack")
    web_port = free_port()
    url = f"http://127.0.0.1:{web_port}"
    countries = base / "countries"
    media = MediaHost()
    helpline, rapidpro = start_peers(url, countries, media)
    env = adapter_env(stack_database, redis_url, countries, "integration", PROCESS_SETTINGS)
    full_env = {**os.environ, **env}
    key = migrate_and_create_client(full_env, f"weni-{uuid.uuid4().hex[:6]}")
    gunicorn = ManagedProcess(
        [str(BIN / "gunicorn"), "-w", "2", "-b", f"127.0.0.1:{web_port}", "wsgi:app"],
        env=env, ready_url=f"{url}/healthz", name="gunicorn", cwd=ROOT)
    gunicorn.start(timeout=30)
    stack = Stack(url=url, key=key, env=full_env, helpline=helpline, rapidpro=rapidpro,
                  gunicorn=gunicorn, database_url=stack_database, redis_url=redis_url,
                  media=media)
    stack.start_worker()
    yield stack
    stack.close()


@pytest.fixture
def stack(_stack: Stack, request) -> Stack:
    _stack.reset()
    yield _stack
    if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
        for process in (_stack.gunicorn, *_stack.workers):
            print(f"--- {process.name} output (tail) ---")
            print("\n".join(process.output().splitlines()[-60:]))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
