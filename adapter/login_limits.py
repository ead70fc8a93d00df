"""Limits on failed password logins: per account and per source address, before any hash.

Both password logins, ``POST /api/token/`` (an API client's name and password, checked
with scrypt) and ``POST /v1/sites/<site>/openchs/token/`` (a site's callback
credentials), take a :func:`attempt` first. It refuses with ``429 too_many_logins`` and
``Retry-After`` when either bucket is full, so a flood of guesses costs a Redis round
trip, not ~90 ms of scrypt each:

- one bucket per account (the client name; for a site's callback login, the site),
  ``LOGIN_FAILURES_PER_ACCOUNT`` failures (default 10) per ``LOGIN_WINDOW_SECONDS``
  (default 900): guessing one account's password from many addresses gets nowhere;
- one bucket per source address (``request.remote_addr``),
  ``LOGIN_FAILURES_PER_ADDRESS`` failures (default 30) per window, shared by every
  account and both routes: one address cannot spray guesses over many accounts.
  It is larger than the account limit so that one misconfigured account (whose
  refused attempts no longer count once it is limited) leaves room for the other
  accounts a caller such as Weni logs in from the same address.

Only failures count. An attempt is charged before the password is checked (so
concurrent guesses cannot all slip under the limit) and refunded unless the attempt is
marked failed, so a successful login, or one that ended in a 503, is not counted. A
refused (429) attempt is not counted either: the window runs out
``LOGIN_WINDOW_SECONDS`` after the bucket's first failure, whatever the caller does in
the meantime. While a bucket is full even the right password is refused — that is what
makes guessing useless — until the window has passed. A limit of 0 turns its bucket off.

The price: whoever knows an account's name (the seed's example account is public) can
keep it from getting a *new* token by failing 10 times per window. Tokens already
issued keep working (``API_TOKEN_TTL_SECONDS``, a day by default), and the operator
sees ``login.limit_reached`` in the logs once per window and bucket.

Why a window and not :mod:`adapter.delivery.pacing`'s cell rate pacer: that one charges
every call and refills continuously; here only failures are charged, a success is
refunded, and a full bucket stays full until its window ends.

The source address is ``request.remote_addr``. Behind a reverse proxy that is the
proxy's address, which would put every caller in one address bucket (30 failures from
anyone would block every login): set ``ADAPTER_PROXY_FIX_X_FOR`` to the number of
proxies in front that append ``X-Forwarded-For`` (werkzeug's ``ProxyFix``), or have
the proxy speak the PROXY protocol to gunicorn (``--proxy-protocol``).

Keys live in Redis under ``helpline-adapter:login:<DELIVERY_QUEUE>:`` (deployments
sharing a Redis keep their own counts), with the account name and the address as
SHA-256 digests, never in clear.

**Redis down**: the counts move to this process's memory (same limits, per process,
at most :data:`LOCAL_ENTRIES` buckets). Failing open would let anyone guess as fast
as scrypt allows for as long as Redis is down; failing closed would stop Weni and the
helpline from getting a new token, and a helpline that cannot log in cannot answer a
child. Per-process counts keep logins working and still bound guessing, to the limit
times the number of web processes per window.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from flask import Flask, current_app, request
from redis.exceptions import RedisError

from .errors import ApiError

log = logging.getLogger(__name__)

PREFIX = "helpline-adapter:login:"
#: Buckets one process keeps while Redis is down; the oldest (nearest their end) go first.
LOCAL_ENTRIES = 10_000

# KEYS: the buckets. ARGV[1]: the window (ms); ARGV[1 + i]: the limit of KEYS[i].
# Full bucket: {ms until the longest such window ends, 0}. Else each is charged: {0, counts...}.
_CHARGE = """
local window = tonumber(ARGV[1])
local wait = 0
for i, key in ipairs(KEYS) do
  local count = tonumber(redis.call('GET', key) or '0')
  if count >= tonumber(ARGV[i + 1]) then
    local ttl = redis.call('PTTL', key)
    if ttl < 0 then
      redis.call('PEXPIRE', key, window)
      ttl = window
    end
    if ttl > wait then wait = ttl end
  end
end
if wait > 0 then return {wait, 0} end
local counts = {0}
for i, key in ipairs(KEYS) do
  local count = redis.call('INCR', key)
  if count == 1 then redis.call('PEXPIRE', key, window) end
  counts[i + 1] = count
end
return counts
"""

# A charged attempt that did not fail: take it back (a bucket back at 0 is gone, so the
# next window starts with the next failure, not with this success).
_REFUND = """
for _, key in ipairs(KEYS) do
  local count = tonumber(redis.call('GET', key) or '0')
  if count > 1 then redis.call('DECR', key) elseif count == 1 then redis.call('DEL', key) end
end
return 0
"""


@dataclass
class _Scripts:
    redis: object
    charge: object
    refund: object


@dataclass
class _LocalCounts:
    """This process's counts while Redis cannot be reached: key → [count, ends at]."""

    entries: OrderedDict = field(default_factory=OrderedDict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def charge(self, keys: list[str], limits: list[int], window: float) -> tuple[float, list]:
        now = time.monotonic()
        with self.lock:
            wait = 0.0
            for key, limit in zip(keys, limits, strict=True):
                entry = self._live(key, now)
                if entry is not None and entry[0] >= limit:
                    wait = max(wait, entry[1] - now)
            if wait > 0:
                return wait, []
            counts = []
            for key in keys:
                entry = self._live(key, now)
                if entry is None:
                    while len(self.entries) >= LOCAL_ENTRIES:
                        self.entries.popitem(last=False)
                    entry = self.entries[key] = [0, now + window]
                entry[0] += 1
                counts.append(entry[0])
            return 0.0, counts

    def refund(self, keys: list[str]) -> None:
        with self.lock:
            for key in keys:
                entry = self.entries.get(key)
                if entry is not None:
                    entry[0] -= 1
                    if entry[0] <= 0:
                        del self.entries[key]

    def _live(self, key: str, now: float) -> list | None:
        entry = self.entries.get(key)
        if entry is not None and entry[1] <= now:
            del self.entries[key]
            return None
        return entry


@dataclass
class _State:
    local: _LocalCounts = field(default_factory=_LocalCounts)
    scripts: _Scripts | None = None


def _state(app: Flask) -> _State:
    return app.extensions.setdefault("helpline_adapter_login_limits", _State())


def _scripts(app: Flask, state: _State) -> _Scripts:
    """Registered once per app and Redis client, as the pacer's script is."""
    from .queueing import redis_for

    redis = redis_for(app)  # raises a RedisError when there is none
    if state.scripts is None or state.scripts.redis is not redis:
        state.scripts = _Scripts(redis, redis.register_script(_CHARGE),
                                 redis.register_script(_REFUND))
    return state.scripts


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass
class Attempt:
    """One charged login attempt: :meth:`failed` keeps the charge, anything else refunds."""

    kind: str
    account: str  # as logged: a site code, or a digest of the name tried
    keys: list[str] = field(default_factory=list)
    buckets: list[str] = field(default_factory=list)
    limits: list[int] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    local: bool = False
    is_failed: bool = False

    def failed(self) -> None:
        """The credentials were wrong: the attempt counts against its buckets."""
        self.is_failed = True
        for bucket, limit, count in zip(self.buckets, self.limits, self.counts, strict=True):
            if count == limit:  # this failure filled the bucket: once per window
                log.warning("login.limit_reached", extra={
                    "kind": self.kind, "account": self.account, "bucket": bucket,
                    "window_seconds": current_app.config["LOGIN_WINDOW_SECONDS"]})


@contextmanager
def attempt(kind: str, account: str, *, log_account: bool = False) -> Iterator[Attempt]:
    """Charge a login attempt for ``account`` of ``kind`` (``client``: a client name as
    typed; ``site``: a site code) from the request's address, or raise 429
    ``too_many_logins`` when one of its buckets is full.

    Call :meth:`Attempt.failed` on wrong credentials; leaving the block any other way
    (a token issued, an exception) refunds the attempt. Logs name the account only with
    ``log_account`` (a site code); otherwise a digest of it, as what was typed as a
    name may not be one (a password in the wrong field, say).
    """
    app = current_app._get_current_object()
    config = app.config
    window = float(config["LOGIN_WINDOW_SECONDS"])
    namespace = f"{PREFIX}{config['DELIVERY_QUEUE']}:"
    account_digest = _digest(account)
    shown = account if log_account else account_digest[:16]
    every = [
        ("account", f"{namespace}{kind}:{account_digest}",
         int(config["LOGIN_FAILURES_PER_ACCOUNT"])),
        ("address", f"{namespace}address:{_digest(request.remote_addr or 'unknown')}",
         int(config["LOGIN_FAILURES_PER_ADDRESS"])),
    ]
    on = [bucket for bucket in every if bucket[2] > 0]
    if not on:
        yield Attempt(kind, shown)
        return
    buckets, keys, limits = (list(column) for column in zip(*on, strict=True))
    state = _state(app)
    local = False
    try:
        scripts = _scripts(app, state)
        answer = scripts.charge(keys=keys, args=[math.ceil(window * 1000), *limits])
        wait, counts = int(answer[0]) / 1000, [int(c) for c in answer[1:]]
    except RedisError as exc:
        log.warning("login.limits_local", extra={"error_type": type(exc).__name__})
        local = True
        wait, counts = state.local.charge(keys, limits, window)
    if wait > 0:
        log.info("login.limited", extra={"kind": kind, "account": shown})
        raise ApiError(429, "too_many_logins", "too many failed logins; try again later",
                       headers={"Retry-After": str(max(1, math.ceil(wait)))})
    charged = Attempt(kind, shown, keys, buckets, limits, counts, local)
    try:
        yield charged
    finally:
        if not charged.is_failed:
            _refund(app, state, charged)


def _refund(app: Flask, state: _State, charged: Attempt) -> None:
    if charged.local:
        state.local.refund(charged.keys)
        return
    try:
        _scripts(app, state).refund(keys=charged.keys)
    except RedisError as exc:  # the charge stays until its window ends: a bounded cost
        log.warning("login.refund_failed", extra={"error_type": type(exc).__name__})
