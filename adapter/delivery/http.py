"""Pooled keep-alive HTTP sessions, one per site and target, with default timeouts."""

from __future__ import annotations

import threading

import requests
from requests.adapters import HTTPAdapter


class TimeoutSession(requests.Session):
    """A session whose requests time out unless told otherwise: a hung peer must not
    hold a worker forever."""

    def __init__(self, timeout: tuple[float, float]) -> None:
        super().__init__()
        self.default_timeout = timeout
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=8)
        self.mount("http://", adapter)
        self.mount("https://", adapter)
        self.headers["User-Agent"] = "helpline-adapter"

    def request(self, method, url, **kwargs):  # type: ignore[override]
        kwargs.setdefault("timeout", self.default_timeout)
        # Per request: requests lets REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE override a
        # session's own verify (psf/requests#3829), which would drop a site's CA bundle.
        kwargs.setdefault("verify", self.verify)
        return super().request(method, url, **kwargs)


_sessions: dict[tuple[str, str, str | bool], TimeoutSession] = {}
_lock = threading.Lock()


def session_for(site: str, target: str, timeout: tuple[float, float],
                verify: str | bool = True) -> TimeoutSession:
    """The pooled session for ``target`` of ``site``; ``verify`` is a CA bundle's path
    (a private CA) or ``True`` (the system's). Nothing here turns verification off."""
    if verify is not True and not isinstance(verify, str):
        raise ValueError("TLS verification cannot be turned off")
    key = (site, target, verify)
    with _lock:
        session = _sessions.get(key)
        if session is None:
            session = _sessions[key] = TimeoutSession(timeout)
            session.verify = verify
        return session


def reset_sessions() -> None:
    with _lock:
        for session in _sessions.values():
            session.close()
        _sessions.clear()
