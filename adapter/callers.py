"""Who a credential belongs to, remembered per process, forgotten when one is revoked.

Every request authenticates, and reading the client from the database was the largest
single cost of an accepted message (a round trip, on a busy machine a wait). A process
now remembers, for a credential's SHA-256 digest, the caller it belongs to: a small
frozen :class:`Caller`, never an ORM object (which would expire at the first commit).
Only live credentials are remembered, and at most :data:`MAX_ENTRIES`.

Revocation reaches every process through Redis pub/sub. ``clients revoke`` (or anything
else that takes a credential away) commits, then :func:`forget_all` publishes on one
channel; a thread in each serving process listens there and drops what its process
remembers. The process that revokes forgets at once, before the publish; the others
within the time a message takes over loopback or the LAN.

Nothing is remembered unless the listener is subscribed: before its subscription is
confirmed, after it is lost (Redis down, a dead connection found by the health-check
ping), and on every reconnection, the process forgets and reads the database for each
request, as it always did. Entries also expire after ``CREDENTIAL_CACHE_SECONDS`` (0
turns remembering off): that bounds a change made in the database behind the adapter's
back, and a revocation whose message could not be sent.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from dataclasses import dataclass
from datetime import datetime

from flask import Flask
from redis import Redis
from redis.exceptions import RedisError

from .queueing import redis_for
from .state import state_of

log = logging.getLogger(__name__)

MAX_ENTRIES = 1024  # credentials in use at once are few; past this, start again
POLL_SECONDS = 1.0  # how often the listener looks up from its socket (and whether to stop)
HEALTH_CHECK_SECONDS = 5  # a silent dead subscription is found by a ping this often


@dataclass(frozen=True)
class Caller:
    """A client as a request sees it; the same fields as :class:`~adapter.models.ApiClient`."""

    id: int
    name: str
    role: str
    sites: tuple[str, ...] | None  # None: every site
    can_read_text: bool
    namespace: str  # whose conversations it opens and names (see docs/security.md)
    reads_all: bool = False  # may read other namespaces' conversations on its sites

    @classmethod
    def of(cls, client) -> Caller:
        sites = tuple(client.sites) if client.sites is not None else None
        return cls(client.id, client.name, client.role, sites, bool(client.can_read_text),
                   client.effective_namespace, bool(client.reads_all))

    def may_use_site(self, site: str) -> bool:
        return self.sites is None or site in self.sites


@dataclass(frozen=True)
class Entry:
    caller: Caller
    good_until: float  # monotonic: the cache's own bound
    expires_at: datetime | None  # a token's own expiry, checked on every use


class CallerCache:
    """One per app and process. Requests call :meth:`version`, :meth:`get` and
    :meth:`remember`; the listener thread calls :meth:`forget` and sets :attr:`live`."""

    def __init__(self, app: Flask) -> None:
        self._seconds = float(app.config["CREDENTIAL_CACHE_SECONDS"])
        self._url = app.config.get("REDIS_URL")
        self._channel = signal_channel(app)
        # The listener thread's name, and its Redis client name (CLIENT LIST shows it).
        self.listener_name = f"hla-revocations-{app.config['DELIVERY_QUEUE']}"
        self._entries: dict[str, Entry] = {}
        self._lock = threading.Lock()
        self._version = 0  # one more at every forgetting
        self._pid: int | None = None
        self.live = False  # the listener is subscribed

    def version(self) -> int | None:
        """What a lookup remembers under, or None: remember nothing now."""
        if self._seconds <= 0 or not self._url:
            return None
        if self._pid != os.getpid():  # first use in this process (a fork starts afresh)
            self._start_listener()
        return self._version if self.live else None

    def get(self, digest: str, now: datetime) -> Entry | None:
        """The live entry of a digest. Keyed by the credential's SHA-256: how long a
        lookup takes tells nothing about the credential itself."""
        entry = self._entries.get(digest)
        if entry is None:
            return None
        if entry.good_until <= time.monotonic() or (
                entry.expires_at is not None and entry.expires_at <= now):
            self._entries.pop(digest, None)
            return None
        return entry

    def remember(self, digest: str, caller: Caller, expires_at: datetime | None,
                 version: int) -> None:
        """Keep a lookup made under ``version``, unless a forgetting came since (the
        credential may have been revoked after the database was read)."""
        with self._lock:
            if version != self._version or not self.live:
                return
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[digest] = Entry(caller, time.monotonic() + self._seconds,
                                          expires_at)

    def forget(self) -> None:
        with self._lock:
            self._version += 1
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def _set_live(self, live: bool) -> None:
        self.forget()  # what came in between went unheard
        self.live = live

    def _start_listener(self) -> None:
        self._pid = os.getpid()
        self.live = False
        self.forget()
        threading.Thread(target=_listen, args=(weakref.ref(self), self._url, self._channel,
                                               self.listener_name),
                         name=self.listener_name, daemon=True).start()


def _listen(ref: weakref.ref, url: str, channel: str, name: str) -> None:
    """Subscribe and forget on every message; resubscribe after any failure. Ends when
    its cache is gone (an app discarded), holding no reference to it meanwhile."""
    delay = 0.5
    while (cache := ref()) is not None:
        del cache
        client = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5,
                                health_check_interval=HEALTH_CHECK_SECONDS, client_name=name)
        pubsub = client.pubsub()
        try:
            pubsub.subscribe(channel)
            while (cache := ref()) is not None:
                message = pubsub.get_message(timeout=POLL_SECONDS)
                if message is not None and message["type"] == "subscribe":
                    cache._set_live(True)
                    delay = 0.5
                elif message is not None and message["type"] == "message":
                    cache.forget()
                del cache
        except (RedisError, OSError) as exc:
            if (cache := ref()) is not None:
                if cache.live:
                    log.warning("credentials.listener_lost",
                                extra={"error_type": type(exc).__name__})
                cache._set_live(False)
                del cache
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
        finally:
            pubsub.close()
            client.close()


def signal_channel(app: Flask) -> str:
    # Namespaced like the queue: deployments sharing a Redis revoke their own clients.
    return f"helpline-adapter:credentials-revoked:{app.config['DELIVERY_QUEUE']}"


def cache_for(app: Flask) -> CallerCache:
    state = state_of(app)
    if state.callers is None:
        state.callers = CallerCache(app)
    return state.callers


def forget_all(app: Flask) -> bool:
    """After a revocation has committed: this process forgets at once, every other one
    when the message reaches it. False if Redis could not be told: the others then
    forget within ``CREDENTIAL_CACHE_SECONDS``."""
    cache_for(app).forget()
    try:
        redis_for(app).publish(signal_channel(app), "revoked")
    except RedisError as exc:
        log.warning("credentials.forget_failed", extra={"error_type": type(exc).__name__})
        return False
    return True
