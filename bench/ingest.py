"""Ingest: accepted client messages per second through gunicorn, against a bare endpoint.

Both targets get the same load from a separate process (``bench.load``, closed loop)
for the same time, under the same gunicorn settings, in the same run, in alternating
rounds. The adapter's
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
ROUNDS = 3


@dataclass
class IngestResult:
    rate: float
    p50: float
    p99: float
    accepted: int
    other: dict[str, int]
    elapsed: float
    latencies: list[float]


def measure(url: str, key: str | None, conversations: list[str], seconds: float,
            threads: int, prefix: str) -> IngestResult:
    spec = {"url": url, "key": key, "conversations": conversations, "threads": threads,
            "mode": "max", "duration": seconds + 1, "warmup": 1, "prefix": prefix}
    result = run_in_process(spec, timeout=seconds + 60)
    accepted = sum(n for status, n in result["statuses"].items() if status in ("200", "202"))
    other = {s: n for s, n in result["statuses"].items() if s not in ("200", "202")}
    lat = result["latencies_ms"]
    return IngestResult(accepted / result["elapsed"], percentile(lat, 50), percentile(lat, 99),
                        accepted, other, result["elapsed"], lat)


def run(stack: AdapterStack, rss: PeakRss, seconds: float, threads: int,
        rounds: int = ROUNDS) -> list[Row]:
    """Bare endpoint and adapter in alternating rounds (``seconds`` each in all); rows.

    A shared machine drifts by tens of percent within a minute; alternating short
    rounds puts both targets under the same drift. The ratio is the median of the
    rounds' ratios; rates and latencies are over all rounds.
    """
    bare = bare_gunicorn()
    try:
        rss.watch_children("web worker (bare Flask)", bare.pid)
        bare_ids = [f"bare-{n}" for n in range(CONVERSATIONS)]
        ids = stack.start_conversations(CONVERSATIONS, "ingest")
        pairs = []
        for number in range(rounds):
            baseline = measure(bare.url, None, bare_ids, seconds / rounds, threads,  # type: ignore[attr-defined]
                               f"bare{number}")
            ours = measure(stack.url, stack.key, ids, seconds / rounds, threads,
                           f"ingest{number}")
            pairs.append((ours, baseline))
    finally:
        rss.sample()
        rss.unwatch("web worker (bare Flask)")
        bare.close()
    ratios = sorted(o.rate / b.rate for o, b in pairs if b.rate)
    ratio = ratios[len(ratios) // 2] if ratios else 0.0
    ours, baseline = combine(o for o, _ in pairs), combine(b for _, b in pairs)
    errors = f" (non-2xx: {ours.other})" if ours.other else ""
    spread = f" ({ratios[0]:.2f}-{ratios[-1]:.2f})" if len(ratios) > 1 else ""
    return [
        Row("ingest", f"accepted messages/s, {rounds} alternating rounds",
            f"{ours.rate:.0f}{errors}", f"{baseline.rate:.0f}", f"{ratio:.2f}{spread}",
            ">= 0.40", ratio >= 0.4 and not ours.other),
        Row("ingest", "latency p50", ms(ours.p50), ms(baseline.p50)),
        Row("ingest", "latency p99", ms(ours.p99), ms(baseline.p99)),
    ]


def combine(results) -> IngestResult:
    """Rounds of one target as one result: total rate, latencies over every request."""
    results = list(results)
    latencies = [x for r in results for x in r.latencies]
    other: dict[str, int] = {}
    for r in results:
        for status, n in r.other.items():
            other[status] = other.get(status, 0) + n
    elapsed = sum(r.elapsed for r in results)
    accepted = sum(r.accepted for r in results)
    return IngestResult(accepted / elapsed if elapsed else 0.0, percentile(latencies, 50),
                        percentile(latencies, 99), accepted, other, elapsed, latencies)
