"""Reading a /metrics scrape (Prometheus text format) in tests."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def samples(body: str) -> dict[tuple[str, frozenset], float]:
    """Every sample: (sample name, its labels as a frozenset of pairs) → value."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(body) for s in family.samples}


def value(body: str, name: str, **labels: str) -> float | None:
    return samples(body).get((name, frozenset(labels.items())))


def names(body: str) -> set[str]:
    """Every family and sample name of the scrape (``x``, ``x_total``, ``x_bucket``, ...)."""
    found = set()
    for family in text_string_to_metric_families(body):
        found.add(family.name)
        found.update(s.name for s in family.samples)
    return found
