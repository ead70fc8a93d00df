"""Deliveries a site cannot take as configured: ``held``, never failed.

A site whose secrets are unset (every sample site on a fresh install, or a worker
started without the variables the web tier has) cannot be called: making the call
anyway would send ``Authorization: Bearer `` and turn a child's message into a
permanent 401. So the delivery is *held*: created so (:func:`adapter.outbox.
new_delivery`) or put so when a worker finds the site incomplete (:class:`SiteHeld`),
with no attempt counted and the reason as its last error. It keeps its lane (nothing
behind it overtakes), it is listed (``deliveries list --held``, ``/metrics``) and
retryable (``deliveries retry``), and on every sweep the relay makes the held
deliveries of each site pending again once this worker has that site complete.
"""

from __future__ import annotations

import logging

from flask import Flask
from sqlalchemy import select, update

from plugins.types import DeliveryFailure

from ..extensions import db
from ..models import Delivery, DeliveryStatus, utcnow
from ..state import state_of

log = logging.getLogger(__name__)


class SiteHeld(DeliveryFailure):
    """The site cannot be called as configured: hold the delivery, make no call."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem, retryable=True)


def hold(delivery: Delivery, problem: str) -> None:
    """Park a claimed delivery (the caller commits): its claim did not count as a try."""
    delivery.status = DeliveryStatus.HELD
    delivery.attempts = max(0, delivery.attempts - 1)
    delivery.lease_until = None
    delivery.last_status_code = None
    delivery.last_error = problem[:500]
    log.warning("delivery.held", extra={
        "delivery_id": delivery.id, "site": delivery.site, "target": delivery.target,
        "action": delivery.action, "conversation_id": delivery.conversation_id})


def release_held(app: Flask) -> int:
    """Held deliveries of the (site, target)s this process can now call: pending, due now."""
    sites = state_of(app).sites
    held = db.session.execute(
        select(Delivery.site, Delivery.target).where(Delivery.status == DeliveryStatus.HELD)
        .distinct()
    ).all()
    released = 0
    for code, target in held:
        site = sites.get(code)
        if site is None or site.problem_for(target):
            continue
        released += db.session.execute(
            update(Delivery)
            .where(Delivery.status == DeliveryStatus.HELD, Delivery.site == code,
                   Delivery.target == target)
            .values(status=DeliveryStatus.PENDING, due_at=utcnow(), last_error=None)
            .execution_options(synchronize_session=False)
        ).rowcount
        log.info("delivery.released", extra={"site": code, "target": target})
    db.session.commit()
    return released
