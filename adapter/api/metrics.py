"""Prometheus metrics, read from the database at scrape time.

The database is the truth shared by every gunicorn worker and delivery worker, so
gauges computed from it are right without prometheus_client's multiprocess mode.
"""

from __future__ import annotations

from flask import Response, g
from flask.views import MethodView
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func

from adapter.api.blueprint import Blueprint

from ..auth import require_client
from ..extensions import db
from ..models import Conversation, Delivery, DeliveryStatus, Message, utcnow
from ..state import state_of
from .docs import errors

blp = Blueprint("metrics", __name__, description="Prometheus metrics")


def _counts(name: str, documentation: str, query, *columns) -> GaugeMetricFamily:
    """A gauge of row counts grouped by ``columns`` (their names are the labels)."""
    family = GaugeMetricFamily(name, documentation, labels=[c.key for c in columns])
    for *labels, count in db.session.execute(
        query.add_columns(*columns, func.count()).group_by(*columns)
    ):
        family.add_metric(list(labels), count)
    return family


class DatabaseCollector:
    """Counts by state, and the age of the oldest delivery still waiting, over the sites
    the monitor may see (``sites`` None: every site)."""

    def __init__(self, sites: tuple[str, ...] | None) -> None:
        self.sites = sites

    def _at(self, column):
        return db.true() if self.sites is None else column.in_(self.sites)

    def collect(self):
        yield _counts("helpline_adapter_deliveries", "Deliveries by status, target and site",
                      db.select().where(self._at(Delivery.site)),
                      Delivery.status, Delivery.target, Delivery.site)
        yield _counts("helpline_adapter_conversations", "Conversations by state and site",
                      db.select().where(self._at(Conversation.site)),
                      Conversation.state, Conversation.site)
        yield _counts("helpline_adapter_messages", "Messages by direction and delivery status",
                      db.select().select_from(Message).join(Conversation)
                      .where(self._at(Conversation.site)),
                      Message.direction, Message.status)

        yield _counts("helpline_adapter_deliveries_retrying",
                      "Deliveries waiting after a failed attempt, by site and target: the "
                      "far side is failing (last_error says how; sites check names it)",
                      db.select().where(self._at(Delivery.site),
                                        Delivery.status == DeliveryStatus.PENDING,
                                        Delivery.attempts > 0),
                      Delivery.site, Delivery.target)
        yield self._deliverable()

        oldest = db.session.execute(
            db.select(func.min(Delivery.created_at))
            .where(Delivery.status.in_(DeliveryStatus.ACTIVE), self._at(Delivery.site))
        ).scalar()
        age = GaugeMetricFamily(
            "helpline_adapter_oldest_pending_delivery_seconds",
            "Age of the oldest delivery not yet done (0 when none)")
        age.add_metric([], (utcnow() - oldest).total_seconds() if oldest else 0.0)
        yield age

    def _deliverable(self) -> GaugeMetricFamily:
        """1 when a site's config lets each side be called, 0 while a secret it needs is
        unset (its deliveries are held)."""
        family = GaugeMetricFamily(
            "helpline_adapter_site_deliverable",
            "1 when the site's config for that side is complete, 0 while a secret is unset",
            labels=["site", "target"])
        for site in state_of().sites:
            if self.sites is not None and site.code not in self.sites:
                continue
            for target in ("helpline", "chatbot"):
                if target == "chatbot" and site.rapidpro is None:
                    continue
                family.add_metric([site.code, target], 0.0 if site.unset_for(target) else 1.0)
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
