"""The running system for replaying the seed's curl requests: the integration stack
(gunicorn, worker, sandbox helpline and RapidPro, PostgreSQL, Redis), plus a second
gunicorn mounted at ``/open`` as the seed's URLs are, and the seed's account."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from adapter.sandbox.process import ManagedProcess, free_port
from tests.compat.conftest import SEED_PASSWORD, SEED_USERNAME
from tests.integration.conftest import (  # noqa: F401 - the fixtures, for this package
    BIN,
    ROOT,
    Stack,
    _stack,
    stack,
    stack_database,
)

__all__ = ["OpenMount"]


@dataclass
class OpenMount:
    """The adapter as the seed addresses it: ``<url>/open/api/...``."""

    base: str  # e.g. http://127.0.0.1:PORT/open
    stack: Stack


@pytest.fixture(scope="package")
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
