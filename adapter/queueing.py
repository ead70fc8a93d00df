"""Redis and the RQ queue, built per app (never at import time)."""

from __future__ import annotations

from flask import Flask
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from rq import Queue

from .state import state_of


class NoRedisUrl(RedisConnectionError):
    """No ``REDIS_URL`` here (a command run beside ``serve``'s embedded Redis): to its
    callers, the same as a Redis that cannot be reached."""


def redis_for(app: Flask) -> Redis:
    state = state_of(app)
    if state.redis is None:
        url = app.config.get("REDIS_URL")
        if not url:
            raise NoRedisUrl("REDIS_URL is not set (the run command starts an embedded one)")
        state.redis = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5,
                                     health_check_interval=30)
    return state.redis


def pacer_for(app: Flask, prefix: str):
    """One :class:`~adapter.delivery.pacing.Pacer` per prefix and app: its Lua script is
    registered once, not on every request or delivery."""
    from .delivery.pacing import Pacer

    pacers = state_of(app).pacers
    if prefix not in pacers:
        pacers[prefix] = Pacer(redis_for(app), prefix=prefix)
    return pacers[prefix]


def queue_for(app: Flask) -> Queue:
    return Queue(app.config["DELIVERY_QUEUE"], connection=redis_for(app))
