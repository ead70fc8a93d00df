"""End-to-end latency: webhook sent → message recorded by the sandbox helpline.

An open-loop load (``bench.load``, ``paced``) offers a steady rate for a bounded
time while one delivery worker runs. The generator notes when it sent each message
and the adapter's id for it (from the 202); the sandbox notes when each message
arrived (``time``). Both clocks are this machine's, so the difference is the
latency, including the time the webhook call itself took.
"""

from __future__ import annotations

import time

from bench.load import run_in_process
from bench.report import Row
from bench.stack import AdapterStack
from bench.stats import ms, percentile

CONVERSATIONS = 50
THREADS = 8


def wait_for_messages(stack: AdapterStack, count: int, timeout: float) -> bool:
    """Poll the sandbox's counts until it holds ``count`` messages (or the deadline)."""
    deadline = time.monotonic() + timeout
    while stack.helpline.client.counts()["messages"] < count:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def run(stack: AdapterStack, rate: float, seconds: float) -> list[Row]:
    stack.helpline.client.reset()
    ids = stack.start_conversations(CONVERSATIONS, "e2e")
    spec = {"url": stack.url, "key": stack.key, "conversations": ids, "threads": THREADS,
            "mode": "paced", "rate": rate, "duration": seconds, "prefix": "e2e"}
    result = run_in_process(spec, timeout=seconds + 60)
    sent = {m[4]: m[2] for m in result["messages"] if m[4]}
    wait_for_messages(stack, len(sent), timeout=30)
    arrived = {r["message_id"]: r["time"] for r in stack.helpline.client.records("messages")}
    latencies = [(arrived[mid] - at) * 1000 for mid, at in sent.items() if mid in arrived]
    missing = len(sent) - len(latencies)
    p99 = percentile(latencies, 99)
    answers = result["latencies_ms"]
    offered = f"{len(result['messages'])} msgs at {rate:.0f}/s for {seconds:.0f} s"
    return [
        Row("e2e", f"p50 ({offered})", ms(percentile(latencies, 50))),
        Row("e2e", "p95", ms(percentile(latencies, 95))),
        Row("e2e", "p99", ms(p99) + (f" ({missing} not arrived)" if missing else ""),
            target="< 100 ms", met=p99 < 100 and not missing),
        Row("e2e", "of which the webhook's own answer, p50", ms(percentile(answers, 50))),
        Row("e2e", "of which the webhook's own answer, p99", ms(percentile(answers, 99))),
    ]
