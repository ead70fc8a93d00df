"""The relay: what a crash, a lost wake-up or a timer leaves behind, found in the database."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from flask import Flask
from sqlalchemy import update
from sqlalchemy.exc import SQLAlchemyError

from .. import protocol
from ..extensions import db
from ..models import Conversation, ConversationState, utcnow
from ..state import state_of
from ..views import conversation_view
from . import engine, helpline_calls
from .held import release_held
from .http import session_for
from .kick import kick
from .opening import reschedule_held
from .recovery import probe_failing_sites

log = logging.getLogger(__name__)


def sweep(app: Flask) -> None:
    """One pass: expired leases back to pending, due work kicked, silent waits ended."""
    with app.app_context():
        engine.release_stuck()
        probe_failing_sites(app)
        release_held(app)
        reschedule_held(app)
        if engine.due_exists():
            kick(app, repair=True)
        check_assignment_timeouts(app)
        check_waiting_updates(app)


def check_waiting_updates(app: Flask) -> int:
    """Conversations still waiting for a counsellor at a site that says so every N
    seconds (``still_waiting_every``): one ``still_waiting`` event per period each, with
    the helpline's queue position when its kind tells it (asked first, outside any
    transaction, under a short deadline: see :func:`_queue_positions`)."""
    count = 0
    now = utcnow()
    waiting = (ConversationState.REQUESTED, ConversationState.WAITING)
    state = state_of(app)
    for site in state.sites:
        every = site.policies.still_waiting_every
        if not every:
            continue
        cutoff = now - timedelta(seconds=every)
        last = db.func.coalesce(Conversation.still_waiting_at, Conversation.waiting_since)
        due_now = (Conversation.site == site.code, Conversation.state.in_(waiting),
                   Conversation.waiting_since.is_not(None), last < cutoff,
                   Conversation.held_since.is_(None))  # held after hours: from the opening
        positions = _queue_positions(app, site, due_now)
        due = db.session.execute(
            db.select(Conversation).where(*due_now)
            .limit(100).with_for_update(skip_locked=True)
        ).scalars().all()
        for conversation in due:
            won = db.session.execute(  # once per period, however many relays run
                update(Conversation)
                .where(Conversation.id == conversation.id, Conversation.state.in_(waiting),
                       db.func.coalesce(Conversation.still_waiting_at,
                                        Conversation.waiting_since) < cutoff)
                .values(still_waiting_at=now)
                .execution_options(synchronize_session=False)
            ).rowcount
            if won:
                protocol.still_waiting(conversation, site, now, positions.get(conversation.id))
                count += 1
        if due:
            from ..transactions import commit

            commit()
        else:
            db.session.rollback()
    return count


def _queue_positions(app: Flask, site, due_now) -> dict[str, int | None]:
    """The helpline's queue positions of the conversations due an update, for a kind
    with the optional ``queue_position`` step; else none. Read, then the transaction
    ended before any call: no row is locked, nor a connection held, while the helpline
    answers (at most ``QUEUE_POSITION_TIMEOUT_SECONDS``)."""
    state = state_of(app)
    if not helpline_calls.supports(state, site, "queue_position"):
        return {}
    kind = helpline_calls.kind_of(state, site)
    rows = db.session.execute(db.select(Conversation).where(*due_now).limit(100)).scalars()
    views = [conversation_view(kind, site, conversation) for conversation in rows]
    db.session.rollback()
    if not views:
        return {}
    deadline = float(app.config["QUEUE_POSITION_TIMEOUT_SECONDS"])
    # Sessions are pooled by target: the deadline in the name keeps its timeouts its own.
    http = session_for(site.code, f"queue-position:{deadline:g}",
                       (min(deadline, 3.05), deadline), site.verify_for("helpline"))
    return helpline_calls.queue_positions(state, site, views, http, deadline)


def check_assignment_timeouts(app: Flask) -> int:
    """Conversations nobody took in time: the chatbot hears ``no_counsellor``, once."""
    count = 0
    now = utcnow()
    for site in state_of(app).sites:
        cutoff = now - timedelta(seconds=site.policies.assignment_timeout)
        stale = db.session.execute(
            db.select(Conversation)
            .where(
                Conversation.site == site.code,
                Conversation.state.in_((ConversationState.REQUESTED, ConversationState.WAITING)),
                Conversation.no_counsellor_at.is_(None),
                Conversation.waiting_since < cutoff,
                Conversation.held_since.is_(None),  # held after hours: from the opening
            )
            .limit(100)
            .with_for_update(skip_locked=True)
        ).scalars().all()
        for conversation in stale:
            # The conditional update makes the event fire once, however many relays run.
            won = db.session.execute(
                update(Conversation)
                .where(Conversation.id == conversation.id,
                       Conversation.no_counsellor_at.is_(None),
                       Conversation.state.in_((ConversationState.REQUESTED,
                                               ConversationState.WAITING)))
                .values(no_counsellor_at=now)
                .execution_options(synchronize_session=False)
            ).rowcount
            if not won:
                continue
            protocol.no_counsellor(conversation, site)
            log.info("conversation.no_counsellor", extra={
                "conversation_id": conversation.id, "site": site.code})
            count += 1
        if stale:
            from ..transactions import commit

            commit()
        else:
            db.session.rollback()
    return count


class Relay(threading.Thread):
    """Runs :func:`sweep` every few seconds beside the worker, until stopped."""

    def __init__(self, app: Flask) -> None:
        super().__init__(name="relay", daemon=True)
        self.app = app
        self.stopping = threading.Event()

    def run(self) -> None:
        interval = self.app.config["SWEEP_INTERVAL_SECONDS"]
        while not self.stopping.wait(interval):
            try:
                sweep(self.app)
            except SQLAlchemyError as exc:
                log.warning("relay.database_error", extra={"error_type": type(exc).__name__})
                with self.app.app_context():
                    db.session.rollback()
            except Exception:  # keep the relay alive; the next pass tries again
                log.exception("relay.error")

    def stop(self) -> None:
        self.stopping.set()
