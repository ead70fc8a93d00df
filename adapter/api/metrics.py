"""Prometheus metrics, read at scrape time from the database and from Redis.

The database is the truth shared by every gunicorn worker and delivery worker on every
machine, so values computed from its rows at scrape time are right however many
processes there are, without prometheus_client's multiprocess mode (which only sums
the processes of one machine, and loses a process's counts when it is replaced).
"Counters" computed from rows (``*_total``) only grow while the rows stay; a purge,
or ``deliveries retry`` resetting a delivery's attempts, lowers them, which Prometheus
reads as a counter reset. Events no row records (RapidPro pacing waits and 429s) are
counted in Redis (:mod:`adapter.counters`). See ``docs/monitoring/README.md``.

No label carries an id, a text or a URN: only site codes and fixed values.
"""

from __future__ import annotations

import logging

from flask import Response, current_app, g
from flask.views import MethodView
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from redis.exceptions import RedisError
from sqlalchemy import case, func

from adapter.api.blueprint import Blueprint

from .. import counters
from ..auth import require_client
from ..extensions import db
from ..models import (
    Case,
    Conversation,
    ConversationState,
    Delivery,
    DeliveryStatus,
    Message,
    utcnow,
)
from ..state import state_of
from .docs import errors

log = logging.getLogger(__name__)

blp = Blueprint("metrics", __name__, description="Prometheus metrics")

PREFIX = "helpline_adapter_"
#: Seconds from a message accepted to the far side answering 2xx.
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600)
#: Seconds from a conversation started to a counsellor taking it.
WAIT_BUCKETS = (5, 10, 30, 60, 120, 300, 600, 900, 1800, 3600)
#: Not yet taken by a counsellor (``waiting_since`` is set when it starts).
UNASSIGNED = (ConversationState.REQUESTED, ConversationState.WAITING)
#: How a delivery ended (its finished statuses).
OUTCOMES = (DeliveryStatus.DONE, DeliveryStatus.FAILED)
CASE_OUTCOMES = ("created", "failed")


def _counts(family, query, *columns):
    """``family`` filled with row counts grouped by ``columns`` (their names are the labels)."""
    for *labels, count in db.session.execute(
        query.add_columns(*columns, func.count()).group_by(*columns)
    ):
        family.add_metric(list(labels), count)
    return family


def _seconds_between(later, earlier):
    """``later - earlier`` in seconds, in SQL, on SQLite and PostgreSQL."""
    if db.session.get_bind().dialect.name == "sqlite":
        # julianday is a day count in a double: 300 s apart can come out as 300.0000027,
        # one bucket too high. Rounded to the millisecond, as the stored times allow.
        return func.round((func.julianday(later) - func.julianday(earlier)) * 86400.0, 3)
    # date_part is double precision; extract() is numeric since PostgreSQL 14, and slower
    return func.date_part("epoch", later - earlier)


def _when(condition, then=1):
    """The sum of ``then`` over the rows where ``condition`` holds."""
    return func.sum(case((condition, then), else_=0))


class _Histogram:
    """A histogram over the rows of a grouped query: :meth:`bucket` is one ``CASE`` giving
    each row the index of the first bucket its ``seconds`` fit (-1: no value, e.g. not yet
    sent); group by it too, then :meth:`add` each group's count and sum of seconds, and
    the cumulative counts are made here."""

    def __init__(self, buckets) -> None:
        self.buckets = buckets
        self.totals: dict[tuple, list[float]] = {}

    def bucket(self, seconds):
        return case((seconds.is_(None), -1),
                    *((seconds <= bound, n) for n, bound in enumerate(self.buckets)),
                    else_=len(self.buckets)).label("bucket")

    def add(self, labels: tuple, bucket: int, count: int, seconds) -> None:
        if bucket < 0:
            return
        # per label set: the count in each bucket (the last: above every bound), the sum
        total = self.totals.setdefault(labels, [0] * (len(self.buckets) + 1) + [0.0])
        total[bucket] += count
        total[-1] += float(seconds or 0.0)

    def family(self, name: str, documentation: str, labels: list[str]):
        family = HistogramMetricFamily(name, documentation, labels=labels)
        for key, (*counts, total) in sorted(self.totals.items()):
            points, running = [], 0
            for bound, count in zip([*self.buckets, None], counts, strict=True):
                running += count
                points.append(("+Inf" if bound is None else str(float(bound)), running))
            family.add_metric(list(key), points, total)
        return family


def _add(table: dict, key: tuple, value) -> None:
    table[key] = table.get(key, 0) + (value or 0)


class DatabaseCollector:
    """Everything /metrics shows, over the sites the monitor may see (``sites`` None:
    every site). One grouped pass over each table of history (deliveries, messages,
    conversations, cases) and a few queries over the open rows, which indexes find."""

    def __init__(self, sites: tuple[str, ...] | None) -> None:
        self.sites = sites

    def _at(self, column):
        return db.true() if self.sites is None else column.in_(self.sites)

    def _visible_sites(self):
        return [s for s in state_of().sites if self.sites is None or s.code in self.sites]

    def collect(self):
        now = utcnow()
        yield from self._deliveries(now)
        yield from self._messages()
        yield from self._conversations(now)
        yield self._cases()
        yield from self._sites()
        yield from self._redis_counters()

    def _deliveries(self, now):
        by_status = GaugeMetricFamily(PREFIX + "deliveries",
                                      "Deliveries by status, target and site",
                                      labels=["status", "target", "site"])
        finished = CounterMetricFamily(
            PREFIX + "deliveries_finished",
            "Deliveries finished, by site, target and outcome (done: the far side took it; "
            "failed: retries exhausted or refused, a dead letter until replayed)",
            labels=["site", "target", "outcome"])
        dead = GaugeMetricFamily(
            PREFIX + "dead_letters",
            "Failed deliveries waiting for an operator (helpline-adapter deliveries retry)",
            labels=["site", "target"])
        backlog, retries, retrying = {}, {}, {}
        for site, target, status, count, extra, tried in db.session.execute(
                db.select(Delivery.site, Delivery.target, Delivery.status, func.count(),
                          _when(Delivery.attempts > 1, Delivery.attempts - 1),
                          _when(Delivery.attempts > 0))
                .where(self._at(Delivery.site))
                .group_by(Delivery.status, Delivery.site, Delivery.target)):
            by_status.add_metric([status, target, site], count)
            if status in OUTCOMES:
                finished.add_metric([site, target, status], count)
            if status == DeliveryStatus.FAILED:
                dead.add_metric([site, target], count)
            if status in DeliveryStatus.ACTIVE:
                _add(backlog, (site, target), count)
            if status == DeliveryStatus.PENDING and tried:
                _add(retrying, (site, target), tried)
            _add(retries, (site, target), extra)
        yield by_status
        yield finished
        yield dead
        yield _table(GaugeMetricFamily(
            PREFIX + "backlog_deliveries",
            "Deliveries not yet done (pending, sending or held), by site and target",
            labels=["site", "target"]), backlog)
        yield _table(CounterMetricFamily(
            PREFIX + "delivery_retries",
            "Delivery attempts beyond the first, by site and target",
            labels=["site", "target"]), retries)
        yield _table(GaugeMetricFamily(
            PREFIX + "deliveries_retrying",
            "Deliveries waiting after a failed attempt, by site and target: the far side is "
            "failing (last_error says how; sites check names it)", labels=["site", "target"]),
            retrying)

        due = GaugeMetricFamily(
            PREFIX + "oldest_due_delivery_seconds",
            "Seconds the oldest delivery due now (pending or sending) has been due, by site "
            "(0 when none): the workers are not keeping up, or are down",
            labels=["site"])
        # Grouped by an expression, not the column: SQLite would otherwise walk the whole
        # site index (to skip a sort) rather than find the few due ones by status.
        site_key = Delivery.site.concat("")
        rows = dict(db.session.execute(
            db.select(site_key, func.min(Delivery.due_at))
            .where(Delivery.status.in_((DeliveryStatus.PENDING, DeliveryStatus.SENDING)),
                   Delivery.due_at <= now, self._at(Delivery.site))
            .group_by(site_key)).all())
        for site in self._visible_sites():
            oldest = rows.get(site.code)
            due.add_metric([site.code], (now - oldest).total_seconds() if oldest else 0.0)
        yield due

        oldest = db.session.execute(
            db.select(func.min(Delivery.created_at))
            .where(Delivery.status.in_(DeliveryStatus.ACTIVE), self._at(Delivery.site))
        ).scalar()
        age = GaugeMetricFamily(
            PREFIX + "oldest_pending_delivery_seconds",
            "Age of the oldest delivery not yet done (0 when none)")
        age.add_metric([], (now - oldest).total_seconds() if oldest else 0.0)
        yield age

    def _messages(self):
        by_status, accepted = {}, {}
        latency = _Histogram(LATENCY_BUCKETS)
        rows = db.select(Conversation.site, Message.direction, Message.status,
                         _seconds_between(Message.sent_at, Message.created_at).label("seconds")
                         ).select_from(Message).join(Conversation) \
            .where(self._at(Conversation.site)).subquery()
        bucket = latency.bucket(rows.c.seconds)
        for site, direction, status, at, count, seconds in db.session.execute(
                db.select(rows.c.site, rows.c.direction, rows.c.status, bucket, func.count(),
                          func.sum(rows.c.seconds))
                .group_by(rows.c.site, rows.c.direction, rows.c.status, bucket)):
            _add(by_status, (direction, status), count)
            _add(accepted, (site, direction), count)
            latency.add((site, direction), at, count, seconds)
        yield _table(GaugeMetricFamily(
            PREFIX + "messages", "Messages by direction and delivery status",
            labels=["direction", "status"]), by_status)
        yield _table(CounterMetricFamily(
            PREFIX + "messages_accepted", "Messages accepted, by site and direction",
            labels=["site", "direction"]), accepted)
        yield latency.family(
            PREFIX + "message_delivery_latency_seconds",
            "Seconds from a message accepted to the far side answering 2xx, by site and "
            "direction", ["site", "direction"])

    def _conversations(self, now):
        by_state, nobody, waiting, longest = {}, {}, {}, {}
        wait, before_nobody = _Histogram(WAIT_BUCKETS), _Histogram(WAIT_BUCKETS)
        rows = db.select(
            Conversation.state, Conversation.site,
            case((Conversation.no_counsellor_at.is_(None), 0), else_=1).label("nobody"),
            _seconds_between(Conversation.assigned_at, Conversation.created_at)
            .label("seconds"),
            _seconds_between(Conversation.no_counsellor_at,
                             func.coalesce(Conversation.waiting_since, Conversation.created_at))
            .label("nobody_seconds")).where(self._at(Conversation.site)).subquery()
        bucket = wait.bucket(rows.c.seconds)
        nobody_bucket = before_nobody.bucket(rows.c.nobody_seconds).label("nobody_bucket")
        for state, site, at, nobody_at, count, no_counsellor, seconds, nobody_seconds in \
                db.session.execute(
                    db.select(rows.c.state, rows.c.site, bucket, nobody_bucket, func.count(),
                              func.sum(rows.c.nobody), func.sum(rows.c.seconds),
                              func.sum(rows.c.nobody_seconds))
                    .group_by(rows.c.state, rows.c.site, bucket, nobody_bucket)):
            _add(by_state, (state, site), count)
            _add(nobody, (site,), no_counsellor)
            wait.add((site,), at, count, seconds)
            before_nobody.add((site,), nobody_at, count, nobody_seconds)
        by_state = _table(GaugeMetricFamily(
            PREFIX + "conversations", "Conversations by state and site",
            labels=["state", "site"]), by_state)
        yield by_state
        yield wait.family(
            PREFIX + "conversation_wait_seconds",
            "Seconds from a conversation started to a counsellor taking it, by site",
            ["site"])
        yield _table(CounterMetricFamily(
            PREFIX + "no_counsellor", "Conversations nobody took within the site's "
            "assignment timeout (the chatbot heard no_counsellor)", labels=["site"]),
            {k: v for k, v in nobody.items() if v})
        yield before_nobody.family(
            PREFIX + "no_counsellor_wait_seconds",
            "Seconds a child had waited when the chatbot heard no_counsellor (the site's "
            "assignment_timeout, plus the relay's lag), by site", ["site"])

        for site, count, oldest in db.session.execute(
                db.select(Conversation.site, func.count(), func.min(Conversation.waiting_since))
                .where(Conversation.state.in_(UNASSIGNED), self._at(Conversation.site))
                .group_by(Conversation.site)):
            waiting[site], longest[site] = count, oldest
        waiting_family = GaugeMetricFamily(
            PREFIX + "conversations_waiting",
            "Conversations no counsellor has taken yet (requested or waiting), by site",
            labels=["site"])
        longest_family = GaugeMetricFamily(
            PREFIX + "oldest_waiting_conversation_seconds",
            "Seconds the child waiting longest for a counsellor has waited, by site (0 when "
            "none)", labels=["site"])
        for site in self._visible_sites():
            oldest = longest.get(site.code)
            waiting_family.add_metric([site.code], waiting.get(site.code, 0))
            longest_family.add_metric([site.code],
                                      (now - oldest).total_seconds() if oldest else 0.0)
        yield waiting_family
        yield longest_family
        held = dict(db.session.execute(
            db.select(Conversation.site, func.count())
            .where(Conversation.held_since.is_not(None),
                   Conversation.state == ConversationState.REQUESTED, self._at(Conversation.site))
            .group_by(Conversation.site)).all())
        held_family = GaugeMetricFamily(
            PREFIX + "conversations_held_after_hours",
            "Conversations started while their site was closed ([hours] outside = hold), "
            "kept from the helpline until it opens, by site", labels=["site"])
        for site in self._visible_sites():
            held_family.add_metric([site.code], held.get(site.code, 0))
        yield held_family

    def _cases(self):
        return _counts(CounterMetricFamily(
            PREFIX + "cases_finished", "Cases finished at the helpline, by site and outcome "
            "(created, failed)", labels=["site", "outcome"]),
            db.select().where(self._at(Case.site), Case.status.in_(CASE_OUTCOMES)),
            Case.site, Case.status)

    def _sites(self):
        """1 when a site's config lets each side be called, 0 while a secret it needs is
        unset (its deliveries are held); and each site's assignment timeout."""
        deliverable = GaugeMetricFamily(
            PREFIX + "site_deliverable",
            "1 when the site's config for that side is complete, 0 while a secret is unset",
            labels=["site", "target"])
        timeout = GaugeMetricFamily(
            PREFIX + "site_assignment_timeout_seconds",
            "The site's assignment_timeout policy: a child waiting longer hears no_counsellor",
            labels=["site"])
        for site in self._visible_sites():
            timeout.add_metric([site.code], float(site.policies.assignment_timeout))
            for target in ("helpline", "chatbot"):
                if target == "chatbot" and site.rapidpro is None:
                    continue
                deliverable.add_metric([site.code, target],
                                       0.0 if site.unset_for(target) else 1.0)
        yield deliverable
        yield timeout

    def _redis_counters(self):
        app = current_app._get_current_object()
        known = {site.code for site in self._visible_sites()}
        up = GaugeMetricFamily(PREFIX + "metrics_redis_up",
                               "1 when the Redis-kept counters could be read for this scrape")
        try:
            values = {name: counters.read(app, name) for name in counters.COUNTERS}
        except RedisError as exc:
            log.warning("metrics.redis_unreadable", extra={"error_type": type(exc).__name__})
            up.add_metric([], 0.0)
            yield up
            return
        up.add_metric([], 1.0)
        yield up
        for name, documentation in counters.COUNTERS.items():
            family = CounterMetricFamily(PREFIX + name, documentation + ", by site",
                                         labels=["site"])
            for site in sorted(known):
                family.add_metric([site], values[name].get(site, 0))
            yield family



def _table(family, values: dict):
    for labels, value in sorted(values.items()):
        family.add_metric(list(labels), value)
    return family


@blp.route("/metrics")
class Metrics(MethodView):
    @require_client("monitor")
    @blp.doc(security=[{"Token": []}])
    @blp.response(200, description="Prometheus text format")
    @errors(blp, 401, 403, 429, 503)
    def get(self):
        """Metrics in Prometheus text format, for a `monitor` client's key, over its sites."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(DatabaseCollector(g.client.sites))
        return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
