"""When to try again."""

from __future__ import annotations

import random
from collections.abc import Sequence


def next_delay(attempts: int, schedule: Sequence[float], jitter: float,
               retry_after: float | None = None) -> float | None:
    """Seconds before attempt ``attempts + 1``, or None when the schedule is exhausted.

    ``attempts`` counts the attempts made so far (1 after the first). A ``Retry-After``
    from the far side is honoured when it asks for longer than our schedule.
    """
    if attempts > len(schedule):
        return None
    base = float(schedule[attempts - 1])
    delay = base * random.uniform(1 - jitter, 1 + jitter) if jitter else base
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay
