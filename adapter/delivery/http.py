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
        return super().request(method, url, **kwargs)


_sessions: dict[tuple[str, str], TimeoutSession] = {}
_lock = threading.Lock()


def session_for(site: str, target: str, timeout: tuple[float, float]) -> TimeoutSession:
    key = (site, target)
    with _lock:
        session = _sessions.get(key)
        if session is None:
            session = _sessions[key] = TimeoutSession(timeout)
        return session


def reset_sessions() -> None:
    with _lock:
        for session in _sessions.values():
            session.close()
        _sessions.clear()
