"""Replaying failed and held deliveries: what ``deliveries retry`` and the console's
Retry buttons do, the same way.

A replayed delivery is pending again, due now, with its attempts back at 0 and no lease;
it keeps its lane (its place in its conversation's order). After the commit the worker
is woken (:func:`adapter.delivery.kick.kick`). A held delivery whose site is still
incomplete is held again by the worker, with no attempt counted and no call made.
"""

from __future__ import annotations

from collections.abc import Iterable

from flask import Flask

from ..extensions import db
from ..models import Delivery, DeliveryStatus, utcnow
from .kick import kick

REPLAYABLE = (DeliveryStatus.FAILED, DeliveryStatus.HELD)


def replayable(*, delivery_id: int | None = None, site: str | None = None,
               sites: Iterable[str] | None = None,
               statuses: tuple[str, ...] = REPLAYABLE) -> list[Delivery]:
    """The failed or held deliveries (``statuses``) of one id, one site or some sites."""
    query = db.select(Delivery).where(Delivery.status.in_(statuses))
    if delivery_id is not None:
        query = query.where(Delivery.id == delivery_id)
    if site:
        query = query.where(Delivery.site == site)
    if sites is not None:
        query = query.where(Delivery.site.in_(tuple(sites)))
    return list(db.session.execute(query.order_by(Delivery.id)).scalars())


def requeue(app: Flask, rows: list[Delivery]) -> bool | None:
    """Make ``rows`` pending and due now, commit, and wake the worker. Returns whether
    the worker was told (False: Redis down, the relay's next pass picks them up), or None
    when there was nothing to requeue."""
    now = utcnow()
    for delivery in rows:
        delivery.status = DeliveryStatus.PENDING
        delivery.attempts = 0
        delivery.due_at = now
        delivery.lease_until = None
    db.session.commit()
    return kick(app) if rows else None
