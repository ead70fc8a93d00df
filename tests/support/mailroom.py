"""The sandbox mailroom (Weni's ticketer side) as a real process, for a module's tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from adapter.sandbox.control import RunningSandbox, start_sandbox


@contextmanager
def mailroom(topic: str, secret: str) -> Iterator[RunningSandbox]:
    """A mailroom routing ``topic``, checking our callbacks against ``secret``, retrying
    refused ones quickly."""
    sandbox = start_sandbox("mailroom", "--topic", topic, "--retry-backoff", "0.1",
                            env={"SANDBOX_MAILROOM_WEBHOOK_SECRET": secret})
    try:
        yield sandbox
    finally:
        sandbox.stop()
