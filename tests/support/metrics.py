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


def assert_labels_fixed(body: str, sites: set[str]) -> int:
    """Every label value of the scrape is a site code of ``sites`` or one of a fixed set
    (``le``: a bucket bound): never an id, a text or a URN. Returns the samples checked."""
    from adapter.models import ConversationState, DeliveryStatus, Direction, MessageStatus

    fixed = {
        "site": sites,
        "target": {"helpline", "chatbot"},
        "direction": {Direction.TO_HELPLINE, Direction.TO_CLIENT},
        "state": {ConversationState.CLOSED, *ConversationState.OPEN},
        "status": {DeliveryStatus.DONE, DeliveryStatus.FAILED, *DeliveryStatus.ACTIVE,
                   *MessageStatus.ORDER, MessageStatus.FAILED, "pending", "created"},
        "outcome": {"done", "failed", "created"},
    }
    seen = samples(body)
    for name, labels in seen:
        for label, label_value in labels:
            if label == "le":
                float(label_value)
                continue
            assert label in fixed, (name, label)
            assert label_value in fixed[label], (name, label, label_value)
    return len(seen)
