"""Counters of events the database does not record, kept in Redis so that every
gunicorn worker and delivery worker, on any machine, adds to the same number.

One Redis hash per counter (field: the site code), incremented with HINCRBY and read
whole at scrape time by ``/metrics``. A Redis restart empties them: to Prometheus that
is a counter reset, which ``rate()`` and ``increase()`` already handle. Counting is best
effort: a Redis error never fails the call being counted.
"""

from __future__ import annotations

import logging

from flask import Flask
from redis.exceptions import RedisError

from .queueing import redis_for

log = logging.getLogger(__name__)

#: Every counter kept here: name → what it counts (the /metrics help text).
COUNTERS = {
    "rapidpro_pacing_waits": "Chatbot deliveries put back because our own pacing of the "
                             "site's RapidPro org said not yet",
    "rapidpro_throttled": "HTTP 429 answers from RapidPro",
}


def _key(app: Flask, name: str) -> str:
    # The queue name separates deployments that share one Redis (as tests do).
    return f"helpline-adapter:metrics:{app.config['DELIVERY_QUEUE']}:{name}"


def count(app: Flask, name: str, site: str) -> None:
    """Add one to counter ``name`` for ``site`` (a site code: never an id or URN)."""
    assert name in COUNTERS, name
    try:
        redis_for(app).hincrby(_key(app, name), site, 1)
    except RedisError as exc:
        log.warning("metrics.count_failed", extra={"counter": name,
                                                   "error_type": type(exc).__name__})


def read(app: Flask, name: str) -> dict[str, int]:
    """Counter ``name`` by site (raises RedisError when Redis cannot be reached)."""
    raw = redis_for(app).hgetall(_key(app, name))
    return {site.decode(): int(value) for site, value in raw.items()}
