"""Faults on the return path: counsellor replies → adapter → RapidPro.

Counsellors reply ``#r1, #r2, ...`` in several conversations over the real OpenCHS
callback while RapidPro throttles or goes away; at the sandbox RapidPro every
accepted reply must start the message flow exactly once, in order per conversation.
RapidPro has no dedupe of its own, so any repeat would show as a duplicate.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.faults.test_delivery_faults import hold
from tests.faults.traffic import ReplyStream, assert_clean, tally
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

TO_RAPIDPRO = "helpline → RapidPro"


def run(stack, record, fault: str, inject: Callable[[ReplyStream], str], *,
        tag: str) -> tuple[ReplyStream, dict]:
    stream = ReplyStream(stack, tag, conversations=3, replies=8, interval=0.2)
    stream.open()
    began = time.monotonic()
    stream.start()
    try:
        note = inject(stream)
    finally:
        stream.join()
    seen = stream.wait_delivered(timeout=60)
    row = record(tally(stream, seen, fault, TO_RAPIDPRO, time.monotonic() - began, note=note))
    assert_clean(row, stream, stack)
    return stream, row


def _statuses(stack) -> list[int]:
    return [r["status"] for r in stack.rapidpro.client.records("requests")
            if r["path"].endswith("flow_starts.json")]


def _replying(stream: ReplyStream) -> None:
    wait_until(lambda: stream.accepted_count() >= 3, timeout=20, what="counsellors replying")


def test_rapidpro_throttling_429_retry_after(stack, record):
    def inject(stream: ReplyStream) -> str:
        _replying(stream)
        for _ in range(4):
            stack.rapidpro.client.set_faults(throttle_next=2, retry_after=1)
            wait_until(lambda: stack.rapidpro.client.faults()["throttle_next"] == 0,
                       timeout=15, what="the throttle consumed")
        return "four rounds of two 429s with Retry-After: 1"

    run(stack, record, "RapidPro throttling (429 + Retry-After)", inject, tag="throttle")
    statuses = _statuses(stack)
    assert statuses.count(429) == 8
    calls = [r for r in stack.rapidpro.client.records("requests")
             if r["path"].endswith("flow_starts.json")]
    # Honoured: a delivery told 429 is not tried again within its Retry-After. (Calls of
    # one batch go side by side, so others already in flight may still get a 429.)
    by_delivery: dict[str, list[dict]] = {}
    for call in calls:
        by_delivery.setdefault(call["headers"]["Idempotency-Key"], []).append(call)
    for attempts in by_delivery.values():
        for before, after in zip(attempts, attempts[1:], strict=False):
            if before["status"] == 429:
                assert after["time"] - before["time"] >= 0.9, (before, after)


def test_rapidpro_outage_on_the_return_path(stack, record):
    def inject(stream: ReplyStream) -> str:
        _replying(stream)
        stack.rapidpro.client.set_faults(down=True)
        hold(5.0)
        stack.rapidpro.client.set_faults(down=False)
        return "RapidPro answering 503 to everything for 5 s"

    run(stack, record, "RapidPro down", inject, tag="rpdown")
    assert 503 in _statuses(stack)
