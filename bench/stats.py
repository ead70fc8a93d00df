"""Percentiles and rates, computed the same way for every figure in the table."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (no interpolation: every figure was really observed)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def ms(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.1f} ms"
