"""Where ``python -m bench`` calls the delivery benchmark, which lives in ``bench.delivery``.

That module belongs to the delivery engine's owner: one ``helpline-adapter worker``
against a raw ``requests.Session`` loop posting the same bodies to the same sandbox
helpline. It is called in this process, pointed at this run's PostgreSQL and Redis
through ``BENCH_DATABASE_URL``/``BENCH_REDIS_URL`` (so it starts no servers of its
own), and its result becomes rows of the one table.
"""

from __future__ import annotations

import importlib
import os
import traceback

from bench.report import Row
from bench.servers import Servers

TARGET = ">= 0.50"


def run(servers: Servers, messages: int = 1000, conversations: int = 100) -> list[Row]:
    """Rows for the table; a missing or failing ``bench.delivery`` is a row that says so."""
    try:
        delivery = importlib.import_module("bench.delivery")
    except ImportError:
        return [Row("delivery", "not run: bench/delivery.py is not in this tree", "",
                    target=TARGET)]
    saved = {name: os.environ.get(name) for name in ("BENCH_DATABASE_URL", "BENCH_REDIS_URL")}
    os.environ["BENCH_DATABASE_URL"] = servers.postgres_server_url
    os.environ["BENCH_REDIS_URL"] = servers.redis_url
    try:
        result = delivery.run(messages, conversations)
    except TimeoutError:
        raise  # the run's watchdog, not a failure of this phase
    except Exception as exc:  # a failed phase is reported; the other phases still run
        traceback.print_exc()
        return [Row("delivery", f"failed: {type(exc).__name__}: {str(exc)[:80]}", "",
                    target=TARGET, met=False)]
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    ratio, scale = result["ratio"], result["scale"]
    rows = [Row("delivery", f"messages/s, one worker ({messages} msgs, {conversations} convs;"
                " baseline: 8 raw sessions at once)",
                f"{result['worker_rate']:.0f}", f"{result['raw_rate']:.0f}", f"{ratio:.2f}",
                TARGET, ratio >= 0.5)]
    for workers in sorted(scale):
        if workers == 1:
            continue
        share = scale[workers] / scale[1]
        target = ">= 1.80" if workers == 2 else f"ideal {workers:.1f}"
        rows.append(Row("delivery", f"messages/s, {workers} workers vs 1, helpline answering in "
                        f"100 ms ({result['scale_messages']} msgs each)",
                        f"{scale[workers]:.0f}", f"{scale[1]:.0f}", f"{share:.2f}", target,
                        share >= 1.8 if workers == 2 else None))
    for slots, rate in sorted(result.get("slots", {}).items()):
        ideal = slots / delivery.SLOW_HELPLINE
        rows.append(Row("delivery", f"messages/s, one worker of {slots} slots vs the ideal "
                        f"(slots / 100 ms), 100 conversations", f"{rate:.0f}", f"{ideal:.0f}",
                        f"{rate / ideal:.2f}", ">= 0.80", rate / ideal >= 0.8))
    return rows
