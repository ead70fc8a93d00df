"""Pacing calls to a rate-limited peer (RapidPro throttles per org), shared via Redis.

A generic cell rate algorithm: one Redis key per org holds the theoretical arrival
time; a call may go when it is not further ahead than the allowed burst.
"""

from __future__ import annotations

import time

from redis import Redis


class NotYet(Exception):
    """Not an attempt: the delivery must wait (pacing). It is released unchanged."""

    def __init__(self, seconds: float) -> None:
        super().__init__(seconds)
        self.seconds = seconds

_GCRA = """
local key = KEYS[1]
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local blocked = tonumber(redis.call('GET', key .. ':blocked') or '0')
if blocked > now then return tostring(blocked - now) end
local tat = tonumber(redis.call('GET', key) or '0')
if tat < now then tat = now end
local wait = tat - burst * interval - now
if wait > 0 then return tostring(wait) end
redis.call('SET', key, tostring(tat + interval), 'EX', math.ceil(burst * interval) + 60)
return '0'
"""


class Pacer:
    def __init__(self, redis: Redis, prefix: str = "helpline-adapter:pace:") -> None:
        self.redis = redis
        self.prefix = prefix
        self._script = redis.register_script(_GCRA)

    def reserve(self, key: str, rate_per_hour: int, burst: int = 10) -> float:
        """0 if a call may go now (and it is counted), else seconds to wait."""
        interval = 3600.0 / rate_per_hour
        wait = self._script(keys=[self.prefix + key], args=[time.time(), interval, burst])
        return float(wait)

    def block(self, key: str, seconds: float) -> None:
        """The peer said 429 + Retry-After: nobody calls it for that org until then."""
        until = time.time() + seconds
        self.redis.set(self.prefix + key + ":blocked", str(until), ex=max(1, int(seconds) + 1))
