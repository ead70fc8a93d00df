"""Getting a site's backlog moving as soon as its peer is back.

While a helpline is down, every conversation's oldest delivery backs off along the
retry schedule (minutes, then hours). Waiting those out after the helpline returns
would leave children unanswered for no reason, so:

- the relay *probes* a site that said it is unavailable (no answer, 429, 502, 503,
  504): every ``PROBE_INTERVAL_SECONDS`` it makes the site's earliest such delivery
  due now (one request, a circuit breaker's half-open state). A probe does not use up
  the delivery's retries, so a long outage does not turn messages into dead letters;
  a message the peer chokes on (a 500, a 4xx) is never probed and still runs out of
  retries on its own schedule;
- when a delivery that had failed before succeeds, the site's other backed-off
  deliveries become due at once.

Lane order is untouched: only lane heads are ever claimed.
"""

from __future__ import annotations

import math
import time
from datetime import timedelta

from flask import Flask
from sqlalchemy import func, select, update

from ..extensions import db
from ..models import Delivery, DeliveryStatus, utcnow

#: Where the relay notes when it last probed each (site, target): a failed probe backs
#: off again, and without this note the next sweep (a second later) would probe again.
#: Per worker process: with N workers, a site sees at most N probes per interval.
LAST_PROBES = "adapter.delivery.last_probes"

#: Answers that say "the peer is unavailable", not "this message is wrong".
UNAVAILABLE = (429, 502, 503, 504)


def _backed_off(now):
    return (Delivery.status == DeliveryStatus.PENDING, Delivery.attempts > 0,
            Delivery.due_at > now)


def _unavailable():
    return Delivery.last_status_code.is_(None) | Delivery.last_status_code.in_(UNAVAILABLE)


def release_site(site: str, target: str) -> int:
    """The peer answered again: its backed-off deliveries are due now (caller commits)."""
    now = utcnow()
    result = db.session.execute(
        update(Delivery)
        .where(Delivery.site == site, Delivery.target == target, *_backed_off(now))
        .values(due_at=now)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount


def probe_failing_sites(app: Flask) -> int:
    """Make one backed-off delivery per failing (site, target) due now, at most once
    per probe interval; returns how many probes were scheduled."""
    now = utcnow()
    interval = timedelta(seconds=app.config["PROBE_INTERVAL_SECONDS"])
    # A (site, target) is probed when its earliest backed-off delivery is further away
    # than the interval and nothing of it is in flight already.
    earliest = db.session.execute(
        select(Delivery.site, Delivery.target, func.min(Delivery.due_at))
        .where(*_backed_off(now), _unavailable())
        .group_by(Delivery.site, Delivery.target)
    ).all()
    probes = 0
    last_probes = app.extensions.setdefault(LAST_PROBES, {})
    clock = time.monotonic()
    for site, target, due in earliest:
        if due - now <= interval or _busy(site, target):
            continue
        if clock - last_probes.get((site, target), -math.inf) < interval.total_seconds():
            continue  # probed within the interval: its answer was "still down"
        last_probes[(site, target)] = clock
        first = db.session.execute(
            select(Delivery.id).where(Delivery.site == site, Delivery.target == target,
                                      *_backed_off(now), _unavailable())
            .order_by(Delivery.due_at, Delivery.id).limit(1)
        ).scalar()
        if first is not None:
            # attempts - 1: the claim counts the probe back in, so it costs no retry.
            db.session.execute(update(Delivery).where(Delivery.id == first,
                                                      *_backed_off(now))
                               .values(due_at=now, attempts=Delivery.attempts - 1))
            probes += 1
    db.session.commit()
    return probes


def _busy(site: str, target: str) -> bool:
    """Something of this site is being sent right now: that is its probe.

    (Rows that are merely due do not count: they may wait behind a backed-off head.)
    """
    return db.session.execute(
        select(Delivery.id).where(
            Delivery.site == site, Delivery.target == target,
            Delivery.status == DeliveryStatus.SENDING,
        ).limit(1)
    ).first() is not None
