"""Waking the workers after a commit, without one job per delivery.

A flag in Redis says "a drain job is queued and has not started". Whoever sets the
flag enqueues the job; the job clears the flag before it looks at the database, so
every commit either sets the flag (and enqueues) or is seen by the queued job.
"""

from __future__ import annotations

import logging

from flask import Flask
from redis.exceptions import RedisError

from ..queueing import queue_for, redis_for

log = logging.getLogger(__name__)

FLAG_TTL = 60  # a flag orphaned by a lost queue only delays until the relay's next pass


#: The job, named rather than imported: the job module kicks, and names break the loop.
DRAIN_JOB = "adapter.delivery.jobs.drain"


def flag_key(app: Flask) -> str:
    return f"helpline-adapter:drain-queued:{app.config['DELIVERY_QUEUE']}"


def kick(app: Flask, delay: float = 0.0, *, repair: bool = False) -> bool:
    """Make sure a drain job will run (after ``delay`` seconds). False if Redis is down.

    ``repair`` (the relay's pass): when the flag says a job is queued but the queue is
    empty, that job was lost — dequeued by a worker killed before it started — and the
    flag would silence every kick until it expires; queue one anyway (a spare is harmless).
    """
    try:
        queue = queue_for(app)
        if delay > 0:
            from datetime import timedelta

            queue.enqueue_in(timedelta(seconds=delay), DRAIN_JOB, result_ttl=0,
                             failure_ttl=24 * 3600, job_timeout=_job_timeout(app))
            return True
        if redis_for(app).set(flag_key(app), "1", nx=True, ex=FLAG_TTL) or (
                repair and queue.count == 0):
            queue.enqueue(DRAIN_JOB, result_ttl=0, failure_ttl=24 * 3600,
                          job_timeout=_job_timeout(app))
        return True
    except RedisError as exc:
        log.warning("delivery.kick_failed", extra={"error_type": type(exc).__name__})
        return False


def _job_timeout(app: Flask) -> int:
    budget = app.config["DRAIN_BUDGET_SECONDS"]
    http = app.config["HTTP_CONNECT_TIMEOUT"] + app.config["HTTP_READ_TIMEOUT"]
    return int(budget + 4 * http + 30)


def clear_flag(app: Flask) -> None:
    try:
        redis_for(app).delete(flag_key(app))
    except RedisError as exc:
        log.warning("delivery.flag_clear_failed", extra={"error_type": type(exc).__name__})
