"""Ingest: accepted client messages per second through gunicorn, against a bare endpoint.

Both targets get the same load from a separate process (``bench.load``, closed loop)
for the same time, under the same gunicorn settings, in the same run. The adapter's
delivery worker is not running meanwhile: this measures the request path alone
(authenticate, validate, commit message + outbox row to PostgreSQL, wake the
workers through Redis), not a contest for the CPU with deliveries.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.load import run_in_process
from bench.memory import PeakRss
from bench.report import Row
from bench.stack import AdapterStack, bare_gunicorn
from bench.stats import ms, percentile

CONVERSATIONS = 50


@dataclass
class IngestResult:
    rate: float
    p50: float
    p99: float
    accepted: int
    other: dict[str, int]


def measure(url: str, key: str | None, conversations: list[str], seconds: float,
            threads: int, prefix: str) -> IngestResult:
    spec = {"url": url, "key": key, "conversations": conversations, "threads": threads,
            "mode": "max", "duration": seconds + 1, "warmup": 1, "prefix": prefix}
    result = run_in_process(spec, timeout=seconds + 60)
    accepted = sum(n for status, n in result["statuses"].items() if status in ("200", "202"))
    other = {s: n for s, n in result["statuses"].items() if s not in ("200", "202")}
    lat = result["latencies_ms"]
    return IngestResult(accepted / result["elapsed"], percentile(lat, 50), percentile(lat, 99),
                        accepted, other)


def run(stack: AdapterStack, rss: PeakRss, seconds: float, threads: int) -> list[Row]:
    """Bare endpoint first, then the adapter; rows for the table."""
    bare = bare_gunicorn()
    try:
        rss.watch_children("web worker (bare Flask)", bare.pid)
        ids = [f"bare-{n}" for n in range(CONVERSATIONS)]
        baseline = measure(bare.url, None, ids, seconds, threads, "bare")  # type: ignore[attr-defined]
    finally:
        rss.sample()
        rss.unwatch("web worker (bare Flask)")
        bare.close()
    ids = stack.start_conversations(CONVERSATIONS, "ingest")
    ours = measure(stack.url, stack.key, ids, seconds, threads, "ingest")
    ratio = ours.rate / baseline.rate if baseline.rate else 0.0
    errors = f" (non-2xx: {ours.other})" if ours.other else ""
    return [
        Row("ingest", "accepted messages/s", f"{ours.rate:.0f}{errors}", f"{baseline.rate:.0f}",
            f"{ratio:.2f}", ">= 0.40", ratio >= 0.4 and not ours.other),
        Row("ingest", "latency p50", ms(ours.p50), ms(baseline.p50)),
        Row("ingest", "latency p99", ms(ours.p99), ms(baseline.p99)),
    ]
