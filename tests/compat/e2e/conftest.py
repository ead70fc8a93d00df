"""The running system for replaying the seed's curl requests: the integration stack
(gunicorn, worker, sandbox helpline and RapidPro, PostgreSQL, Redis), plus a second
gunicorn mounted at ``/open`` as the seed's URLs are, and the seed's account."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from adapter import create_app
from adapter.database_upgrade import upgrade_database
from adapter.extensions import db
from adapter.sandbox.process import ManagedProcess, free_port
from tests.compat.conftest import SEED_PASSWORD, SEED_USERNAME
from tests.integration.conftest import BIN, ROOT, Stack, _stack, stack  # noqa: F401
from tests.support import servers

__all__ = ["OpenMount"]


@pytest.fixture(scope="session")
def postgres_url(postgres_server, tmp_path_factory) -> Iterator[str]:
    """A database of our own: imported here, the stack is a second one in the session,
    whose workers must not see the integration tests' rows (nor theirs ours)."""
    url, name = servers.create_database(postgres_server)
    countries = tmp_path_factory.mktemp("no-countries")
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "COUNTRIES_DIR": str(countries),
                      "LOG_LEVEL": "WARNING"})
    upgrade_database(app)
    with app.app_context():
        db.engine.dispose()
    yield url
    servers.drop_database(postgres_server, name)


@dataclass
class OpenMount:
    """The adapter as the seed addresses it: ``<url>/open/api/...``."""

    base: str  # e.g. http://127.0.0.1:PORT/open
    stack: Stack


@pytest.fixture(scope="session")
def _open_mount(_stack: Stack) -> Iterator[OpenMount]:  # noqa: F811
    """The seed's account (made with the CLI, as an operator would) and gunicorn under
    ``SCRIPT_NAME=/open``, sharing the stack's database, Redis and workers."""
    subprocess.run(
        [str(BIN / "helpline-adapter"), "clients", "create", SEED_USERNAME, "--password",
         "--site", "ke"],
        cwd=ROOT, env={**_stack.env, "HELPLINE_ADAPTER_CLIENT_PASSWORD": SEED_PASSWORD},
        check=True, capture_output=True, timeout=60)
    port = free_port()
    web = ManagedProcess(
        [str(BIN / "gunicorn"), "-w", "2", "-b", f"127.0.0.1:{port}", "wsgi:app"],
        env={**_stack.env, "SCRIPT_NAME": "/open"},
        ready_url=f"http://127.0.0.1:{port}/open/healthz", name="gunicorn-open", cwd=ROOT)
    web.start(timeout=30)
    yield OpenMount(base=f"http://127.0.0.1:{port}/open", stack=_stack)
    web.close()


@pytest.fixture
def seed(stack: Stack, _open_mount: OpenMount) -> OpenMount:  # noqa: F811
    """A clean stack (tables, sandboxes, one worker) reached through ``/open``."""
    return _open_mount
