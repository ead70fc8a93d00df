"""Held conversations and their site's opening hours, looked at again on every sweep.

A conversation started while its site was closed (``[hours] outside = "hold"``) keeps
its helpline open, and everything behind it in its lane, due at the next opening. That
due time was computed with the schedule of its day; a site whose schedule changed since
(a restart with new ``[hours]``, a holiday removed) must open it at the new time. So the
relay brings each held open forward to the opening the schedule in force now gives (now,
if the site is open). A later opening needs nothing here: the worker that claims the
open checks the schedule again and lets it wait (``performers._wait_for_opening``).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from flask import Flask
from sqlalchemy import select, update

from ..extensions import db
from ..models import Conversation, ConversationState, Delivery, DeliveryStatus
from ..outbox import HELPLINE
from ..protocol import held_due
from ..state import clock_now, state_of

log = logging.getLogger(__name__)

#: A due time this much later than it should be is moved; closer is left alone.
SLACK = timedelta(seconds=1)


def _held():
    return (Conversation.held_since.is_not(None),
            Conversation.state == ConversationState.REQUESTED)


def reschedule_held(app: Flask) -> int:
    """Bring held opens forward to their site's opening by today's schedule; how many
    were moved."""
    now = clock_now(app)
    sites = state_of(app).sites
    moved = 0
    for code in db.session.execute(select(Conversation.site).where(*_held()).distinct()
                                   ).scalars().all():
        site = sites.get(code)
        if site is None:
            continue
        due = held_due(site, now)
        # Open now: due now, exactly. Closed: moved only when it is off by more than the
        # slack (the opening computed again each sweep differs by microseconds).
        slack = timedelta(0) if site.hours is None or site.hours.is_open(now) else SLACK
        held_ids = select(Conversation.id).where(Conversation.site == code, *_held())
        moved += db.session.execute(
            update(Delivery)
            .where(Delivery.conversation_id.in_(held_ids), Delivery.target == HELPLINE,
                   Delivery.action == "open", Delivery.status == DeliveryStatus.PENDING,
                   Delivery.due_at > due + slack)
            .values(due_at=due)
            .execution_options(synchronize_session=False)
        ).rowcount
    db.session.commit()
    if moved:
        log.info("delivery.opening_rescheduled", extra={"count": moved})
    return moved
