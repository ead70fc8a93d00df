"""``python -m bench`` (``./dev bench``): every benchmark, then one table.

Phases, each bounded in time: ingest (adapter vs a bare Flask endpoint), delivery
(``bench.delivery``, see :mod:`bench.delivery_hook`), end-to-end latency at a steady
rate, recovery after a helpline outage; peak RSS is sampled throughout. Everything
runs on 127.0.0.1. A watchdog ends the run if a phase hangs, and every process the
run started is stopped on the way out.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import sys
import tempfile
import time
from pathlib import Path

import psutil

from bench import claim, delivery_hook, ingest, latency, recovery
from bench.memory import PeakRss, mb
from bench.report import Row, markdown
from bench.servers import fresh_database, servers, versions
from bench.stack import AdapterStack

PHASES = ("ingest", "delivery", "claim", "e2e", "recovery")
WEB, WORKER = "web worker (adapter)", "delivery worker"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=PHASES,
                        help="run only this phase (repeatable)")
    parser.add_argument("--ingest-seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=8, help="ingest load connections")
    parser.add_argument("--rate", type=float, default=50.0, help="e2e offered messages/s")
    parser.add_argument("--e2e-seconds", type=float, default=20.0)
    parser.add_argument("--recovery-messages", type=int, default=3000)
    parser.add_argument("--recovery-conversations", type=int, default=100)
    parser.add_argument("--recovery-timeout", type=float, default=60.0,
                        help="give up waiting for the backlog after this many seconds")
    parser.add_argument("--watchdog", type=float, default=540.0,
                        help="abort the whole run after this many seconds")
    return parser.parse_args(argv)


def machine(pg: str, redis: str) -> str:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{platform.platform()}; {os.cpu_count()} cores; "
            f"{psutil.virtual_memory().total / 2**30:.1f} GiB RAM; "
            f"Python {platform.python_version()}; "
            f"PostgreSQL {pg}; Redis {redis}; load average now {load}")


def memory_rows(peaks: dict[str, int]) -> list[Row]:
    limit = 100 * 2**20
    rows = []
    for label in (WEB, "web worker (bare Flask)", WORKER):
        if label in peaks:
            target = "< 100 MB" if label != "web worker (bare Flask)" else ""
            rows.append(Row("memory", f"peak RSS, {label}", mb(peaks[label]), target=target,
                            met=peaks[label] < limit if target else None))
    return rows


def _abort(signum: int, frame: object) -> None:
    raise TimeoutError("benchmark watchdog: the run took too long, stopping")


def run_phases(args: argparse.Namespace, phases: set[str], rows: list[Row],
               rss: PeakRss) -> None:
    """Run the chosen phases in order, adding their rows; processes stop on the way out."""
    folder = Path(tempfile.mkdtemp(prefix="adapter-bench-sites-"))
    with servers() as found:
        info = versions(found.postgres_server_url, found.redis_url)
        print(f"machine: {machine(info['postgresql'], info['redis'])}", flush=True)
        if "ingest" in phases:
            print(f"ingest: {args.ingest_seconds:.0f} s per target ...", flush=True)
            with fresh_database(found.postgres_server_url) as url:
                stack = AdapterStack(url, found.redis_url, folder / "ingest")
                try:
                    rss.watch_children(WEB, stack.web.pid)
                    rows += ingest.run(stack, rss, args.ingest_seconds, args.threads)
                finally:
                    rss.sample()
                    rss.unwatch(WEB)
                    stack.close()
        if "delivery" in phases:
            print("delivery: python -m bench.delivery ...", flush=True)
            rows += delivery_hook.run(found)
        if "claim" in phases:
            print("claim: the same backlog under 1k and 1M rows of done history ...",
                  flush=True)
            rows += claim.run(found.postgres_server_url, found.redis_url, folder / "claim")
        if phases & {"e2e", "recovery"}:
            with fresh_database(found.postgres_server_url) as url:
                stack = AdapterStack(url, found.redis_url, folder / "delivery")
                try:
                    rss.watch_children(WEB, stack.web.pid)
                    stack.start_worker()
                    if "e2e" in phases:
                        print(f"e2e: {args.rate:.0f} msg/s for {args.e2e_seconds:.0f} s ...",
                              flush=True)
                        rows += latency.run(stack, args.rate, args.e2e_seconds)
                    if "recovery" in phases:
                        print(f"recovery: {args.recovery_messages} messages while the helpline "
                              "is down ...", flush=True)
                        rows += recovery.run(stack, args.recovery_messages,
                                             args.recovery_conversations, args.recovery_timeout)
                finally:
                    rss.sample()
                    stack.close()


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    phases = set(args.only or PHASES)
    signal.signal(signal.SIGALRM, _abort)
    signal.alarm(int(args.watchdog))
    started = time.monotonic()
    rows: list[Row] = []
    rss = PeakRss().start()
    # Every delivery worker this run starts (ours and bench.delivery's) is a child of ours.
    rss.watch_matching(WORKER, os.getpid(), ("helpline-adapter", "worker"))
    try:
        run_phases(args, phases, rows, rss)
    except TimeoutError as exc:  # the watchdog: show what was measured before it fired
        rows.append(Row("aborted", str(exc), ""))
    signal.alarm(0)
    rows += memory_rows(rss.stop())
    print()
    print(markdown(rows))
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\ntook {time.monotonic() - started:.0f} s; load average at the end {load}")
    return 0  # a missed target is a finding, shown in the table, not a failed run


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
