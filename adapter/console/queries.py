"""What the console's pages show, read from the database (and the sites' config): ids,
pseudonyms, states, counts, times and our own error lines. No live calls."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func

from ..delivery.recovery import UNAVAILABLE
from ..extensions import db
from ..models import (
    AuditEvent,
    Conversation,
    ConversationState,
    Delivery,
    DeliveryStatus,
    Message,
    utcnow,
)
from ..sites import Site

TARGETS = ("helpline", "chatbot")


@dataclass
class SideHealth:
    """One side (helpline or chatbot) of one site."""

    target: str
    last_success: datetime | None = None
    failing_since: datetime | None = None
    backlog: int = 0  # unfinished: pending, in flight or held
    due: int = 0  # pending and due now
    oldest_due: datetime | None = None  # created_at of the oldest due delivery
    retrying: int = 0  # pending after a failed attempt
    next_try: datetime | None = None
    last_status_code: int | None = None
    last_error: str | None = None
    failed: int = 0
    held: int = 0
    unset: list[str] = field(default_factory=list)  # the secrets that hold it
    probing: bool = False

    @property
    def state(self) -> str:
        if self.unset:
            return "held"
        if self.retrying or (self.failing_since is not None):
            return "failing"
        return "ok"


@dataclass
class SiteHealth:
    site: Site
    sides: list[SideHealth]
    problems: list[str]


def config_problems(site: Site) -> list[str]:
    """What ``sites check`` reports from the config alone, without calling anyone."""
    problems = []
    if site.missing_secrets:
        problems.append("missing environment variables: " + ", ".join(site.missing_secrets))
    if site.rapidpro is None:
        problems.append("no [rapidpro] table: counsellor replies and events cannot reach "
                        "the chatbot")
    return problems


def site_health(sites: list[Site]) -> list[SiteHealth]:
    codes = [site.code for site in sites]
    now = utcnow()
    by_site = Delivery.site.in_(codes)
    key = (Delivery.site, Delivery.target)
    sides: dict[tuple[str, str], SideHealth] = {}

    def side(code: str, target: str) -> SideHealth:
        return sides.setdefault((code, target), SideHealth(target))

    for code, target, last in db.session.execute(
            db.select(*key, func.max(Delivery.done_at))
            .where(by_site, Delivery.status == DeliveryStatus.DONE).group_by(*key)):
        side(code, target).last_success = last
    for code, target, status, count in db.session.execute(
            db.select(*key, Delivery.status, func.count())
            .where(by_site, Delivery.status != DeliveryStatus.DONE)
            .group_by(*key, Delivery.status)):
        entry = side(code, target)
        if status in DeliveryStatus.ACTIVE:
            entry.backlog += count
        if status == DeliveryStatus.FAILED:
            entry.failed = count
        if status == DeliveryStatus.HELD:
            entry.held = count
    for code, target, count, oldest in db.session.execute(
            db.select(*key, func.count(), func.min(Delivery.created_at))
            .where(by_site, Delivery.status == DeliveryStatus.PENDING, Delivery.due_at <= now)
            .group_by(*key)):
        side(code, target).due, side(code, target).oldest_due = count, oldest
    for code, target, count, next_try, since in db.session.execute(
            db.select(*key, func.count(), func.min(Delivery.due_at),
                      func.min(Delivery.created_at))
            .where(by_site, Delivery.status == DeliveryStatus.PENDING, Delivery.attempts > 0)
            .group_by(*key)):
        entry = side(code, target)
        entry.retrying, entry.next_try, entry.failing_since = count, next_try, since
    # The newest failed attempt's answer, per side: a status code and our own line.
    latest = (db.select(Delivery.site, Delivery.target, func.max(Delivery.id).label("id"))
              .where(by_site, Delivery.last_error.is_not(None),
                     Delivery.status.in_((DeliveryStatus.PENDING, DeliveryStatus.FAILED)))
              .group_by(*key).subquery())
    for delivery in db.session.execute(
            db.select(Delivery).join(latest, Delivery.id == latest.c.id)).scalars():
        entry = side(delivery.site, delivery.target)
        entry.last_status_code, entry.last_error = (delivery.last_status_code,
                                                    delivery.last_error)
        entry.probing = bool(entry.retrying) and (
            delivery.last_status_code is None or delivery.last_status_code in UNAVAILABLE)
    # A failed (dead-letter) delivery made since the last success: failing since then.
    for code, target, since in db.session.execute(
            db.select(*key, func.min(Delivery.created_at))
            .where(by_site, Delivery.status == DeliveryStatus.FAILED).group_by(*key)):
        entry = side(code, target)
        if entry.last_success is None or since > entry.last_success:
            entry.failing_since = min(filter(None, (entry.failing_since, since)))
    result = []
    for site in sites:
        shown = []
        for target in TARGETS:
            if target == "chatbot" and site.rapidpro is None and (site.code, target) not in sides:
                continue
            entry = side(site.code, target)
            entry.unset = list(site.unset_for(target))  # names, never values
            shown.append(entry)
        result.append(SiteHealth(site, shown, config_problems(site)))
    return result


@dataclass
class SiteCounts:
    waiting: int = 0
    active: int = 0
    recently_closed: int = 0


def waiting(codes: list[str], recent_hours: float):
    """Conversations waiting for a counsellor (oldest first), and counts per site."""
    since = func.coalesce(Conversation.waiting_since, Conversation.created_at)
    rows = db.session.execute(
        db.select(Conversation).where(
            Conversation.site.in_(codes),
            Conversation.state.in_((ConversationState.REQUESTED, ConversationState.WAITING)))
        .order_by(since, Conversation.id).limit(500)).scalars().all()
    counts: dict[str, SiteCounts] = defaultdict(SiteCounts)
    for code in codes:
        counts[code]  # every site shows, with zeros
    for code, state, count in db.session.execute(
            db.select(Conversation.site, Conversation.state, func.count())
            .where(Conversation.site.in_(codes),
                   Conversation.state.in_(ConversationState.OPEN))
            .group_by(Conversation.site, Conversation.state)):
        if state == ConversationState.ACTIVE:
            counts[code].active += count
        else:
            counts[code].waiting += count
    cutoff = utcnow() - timedelta(hours=recent_hours)
    for code, count in db.session.execute(
            db.select(Conversation.site, func.count())
            .where(Conversation.site.in_(codes), Conversation.state == ConversationState.CLOSED,
                   Conversation.closed_at >= cutoff)
            .group_by(Conversation.site)):
        counts[code].recently_closed = count
    return rows, dict(sorted(counts.items()))


def problem_deliveries(codes: list[str], site: str | None, limit: int = 200):
    query = (db.select(Delivery)
             .where(Delivery.site.in_(codes),
                    Delivery.status.in_((DeliveryStatus.FAILED, DeliveryStatus.HELD)))
             .order_by(Delivery.site, Delivery.id.desc()).limit(limit))
    if site:
        query = query.where(Delivery.site == site)
    return db.session.execute(query).scalars().all()


@dataclass
class Entry:
    """One line of a conversation's timeline."""

    at: datetime
    kind: str  # state | message | delivery | audit
    what: str
    detail: str = ""
    message: Message | None = None


def timeline(conversation: Conversation) -> tuple[list[Entry], list[Delivery], list[Message]]:
    entries: list[Entry] = []
    c = conversation
    # (waiting_since is the start: the child waits from then. Reaching the helpline is
    # the audit event "requested → waiting" below.)
    for at, what in ((c.created_at, "requested"),
                     (c.assigned_at, f"active (counsellor {c.counsellor or '-'})"),
                     (c.no_counsellor_at, "no_counsellor sent"),
                     (c.closed_at, f"closed by {c.closed_by or '-'}"
                      + (f" ({c.close_reason})" if c.close_reason else ""))):
        if at is not None:
            entries.append(Entry(at, "state", what))
    messages = db.session.execute(
        db.select(Message).where(Message.conversation_id == c.id).order_by(Message.seq)
    ).scalars().all()
    for m in messages:
        entries.append(Entry(m.created_at, "message", f"{m.direction} {m.id}",
                             f"from {m.sender or '-'}; status {m.status}", m))
        if m.sent_at:
            entries.append(Entry(m.sent_at, "message", f"sent {m.id}"))
        if m.delivered_at:
            entries.append(Entry(m.delivered_at, "ack", f"{m.status} {m.id}"))
    deliveries = db.session.execute(
        db.select(Delivery).where(Delivery.conversation_id == c.id).order_by(Delivery.id)
    ).scalars().all()
    for d in deliveries:
        entries.append(Entry(d.created_at, "delivery", f"#{d.id} {d.target}/{d.action}",
                             f"{d.status}, attempts {d.attempts}"))
        if d.done_at:
            entries.append(Entry(d.done_at, "delivery", f"#{d.id} done",
                                 f"HTTP {d.last_status_code or '-'}"))
    for event in db.session.execute(
            db.select(AuditEvent).where(AuditEvent.conversation_id == c.id)
            .order_by(AuditEvent.id)).scalars():
        states = (f"{event.from_state or '-'} → {event.to_state}" if event.to_state else "")
        detail = ", ".join(f"{k}={v}" for k, v in sorted((event.detail or {}).items()))
        entries.append(Entry(event.at, "audit", f"{event.action} by {event.actor}",
                             "; ".join(filter(None, (states, detail)))))
    entries.sort(key=lambda e: e.at)
    return entries, deliveries, messages


def readable(message: Message, site: Site, now: datetime) -> bool:
    """Whether a message's text is still within its site's retention (and not purged)."""
    return (message.text is not None and message.purged_at is None
            and message.created_at >= now - timedelta(days=site.policies.retention_days))
