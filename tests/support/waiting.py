"""Waiting for a condition with a deadline: the only way tests synchronise."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")


def wait_until(check: Callable[[], T], timeout: float = 10.0, what: str = "condition",
               interval: float = 0.05) -> T:
    """Poll ``check`` until it returns something truthy; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"{what} not met within {timeout}s (last: {value!r})"[:2000])
        time.sleep(interval)
