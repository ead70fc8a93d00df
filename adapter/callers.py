"""Who a credential belongs to, remembered per process, forgotten at once on revocation.

Every request authenticates, and reading the client from the database was the largest
single cost of an accepted message. A process now remembers, for a credential's
SHA-256 digest, the caller it belongs to (a small frozen :class:`Caller`, never an ORM
object, which would expire at the first commit). Only live credentials are remembered.

Revocation still takes effect at once. ``clients revoke`` (and anything else that
takes a credential away) commits, then calls :func:`forget_all`: a new random value
under one Redis key. Every lookup reads that key first (one ``GET``, far cheaper than
the query), and a process that finds a value other than the one its entries were
remembered under drops them all. A random value, not a counter: a Redis that restarted
empty and counted again could otherwise land on a value already seen.

When that key cannot be read (Redis down), nothing is remembered and every request
reads the database, as before. Entries also expire after ``CREDENTIAL_CACHE_SECONDS``
(0 turns remembering off): the bound on a change made in the database behind the
adapter's back, or a revocation whose signal could not be sent.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass
from datetime import datetime

from flask import Flask
from redis.exceptions import RedisError

from .queueing import redis_for

log = logging.getLogger(__name__)

MAX_ENTRIES = 1024  # credentials in use at once are few; past this, start again
_UNREADABLE = object()


@dataclass(frozen=True)
class Caller:
    """A client as a request sees it; the same fields as :class:`~adapter.models.ApiClient`."""

    id: int
    name: str
    role: str
    sites: tuple[str, ...] | None  # None: every site
    can_read_text: bool

    @classmethod
    def of(cls, client) -> Caller:
        sites = tuple(client.sites) if client.sites is not None else None
        return cls(client.id, client.name, client.role, sites, bool(client.can_read_text))

    def may_use_site(self, site: str) -> bool:
        return self.sites is None or site in self.sites


@dataclass(frozen=True)
class _Entry:
    caller: Caller
    digest: str
    good_until: float  # monotonic: the cache's own bound
    expires_at: datetime | None  # a token's own expiry, checked on every use


class CallerCache:
    def __init__(self, app: Flask) -> None:
        self._app = app
        self._entries: dict[str, _Entry] = {}
        self._generation: object = _UNREADABLE
        self._seconds = float(app.config["CREDENTIAL_CACHE_SECONDS"])

    def current(self) -> bool:
        """Read the revocation signal; False (remember nothing) when it cannot be read."""
        if self._seconds <= 0:
            return False
        try:
            generation = redis_for(self._app).get(signal_key(self._app))
        except RedisError:
            self._entries.clear()
            self._generation = _UNREADABLE
            return False
        if generation != self._generation:
            self._entries.clear()
            self._generation = generation
        return True

    def get(self, digest: str, now: datetime) -> _Entry | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        if entry.good_until <= time.monotonic() or (
                entry.expires_at is not None and entry.expires_at <= now):
            del self._entries[digest]
            return None
        return entry

    def remember(self, digest: str, caller: Caller, expires_at: datetime | None) -> None:
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        self._entries[digest] = _Entry(caller, digest, time.monotonic() + self._seconds,
                                       expires_at)


def signal_key(app: Flask) -> str:
    # Namespaced like the queue: deployments sharing a Redis revoke their own clients.
    return f"helpline-adapter:credentials:{app.config['DELIVERY_QUEUE']}"


def cache_for(app: Flask) -> CallerCache:
    state = app.extensions["helpline_adapter"]
    if state.callers is None:
        state.callers = CallerCache(app)
    return state.callers


def forget_all(app: Flask) -> bool:
    """Tell every process to forget the credentials it remembers (after a revocation
    has committed). False if Redis could not be told: processes then forget within
    ``CREDENTIAL_CACHE_SECONDS``."""
    try:
        redis_for(app).set(signal_key(app), secrets.token_hex(16))
    except RedisError as exc:
        log.warning("credentials.forget_failed", extra={"error_type": type(exc).__name__})
        return False
    return True
