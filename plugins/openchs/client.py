"""Talking to an OpenCHS helpline: the session token, cached, and authenticated posts.

The incumbent gateway fetched a token for every message. Here a token is fetched
once per site and process, shared by the worker's threads, and replaced only when
the helpline refuses it (the core then asks for fresh credentials and retries once).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Mapping
from typing import Any

import requests

from plugins.http import check_response, json_body
from plugins.types import CredentialsExpired, DeliveryFailure

log = logging.getLogger(__name__)


def _cache_key(site_code: str, helpline: Mapping[str, Any]) -> tuple[str, str]:
    """Per site, and per credentials: a changed password must not reuse an old token."""
    material = f"{helpline['base_url']}|{helpline['username']}|{helpline['password']}"
    return site_code, hashlib.sha256(material.encode()).hexdigest()


class TokenCache:
    """Session tokens by site. Thread-safe; one fetch at a time per site."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, str], str] = {}
        self._site_locks: dict[tuple[str, str], threading.Lock] = {}

    def _site_lock(self, key: tuple[str, str]) -> threading.Lock:
        with self._lock:
            return self._site_locks.setdefault(key, threading.Lock())

    def get(self, site_code: str, helpline: Mapping[str, Any], http: requests.Session) -> str:
        """The cached token, or a new one (fetched once even if many threads ask)."""
        key = _cache_key(site_code, helpline)
        token = self._tokens.get(key)
        if token:
            return token
        with self._site_lock(key):
            token = self._tokens.get(key)
            if not token:
                token = fetch_token(site_code, helpline, http)
                self._tokens[key] = token
            return token

    def discard(self, site_code: str, helpline: Mapping[str, Any], token: str) -> None:
        """Forget ``token`` — unless another thread already replaced it."""
        key = _cache_key(site_code, helpline)
        with self._site_lock(key):
            if self._tokens.get(key) == token:
                del self._tokens[key]

    def forget(self, site_code: str, helpline: Mapping[str, Any]) -> None:
        """The helpline refused the site's token: the next call logs in again. (Two
        threads refused at once may each log in: one login too many, never a wrong token.)"""
        key = _cache_key(site_code, helpline)
        with self._site_lock(key):
            self._tokens.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._tokens.clear()


#: One cache per process: tokens outlive a request and a job, not a restart.
tokens = TokenCache()


def fetch_token(site_code: str, helpline: Mapping[str, Any], http: requests.Session) -> str:
    """``POST <base>`` with Basic auth and no body; the token is ``ss[0][0]``."""
    response = http.post(helpline["base_url"],
                         auth=(helpline["username"], helpline["password"]))
    if response.status_code in (401, 403):
        raise _refused("openchs token: the helpline refused the login", response.status_code)
    check_response(response, "openchs token")
    body = json_body(response, "openchs token")
    if not isinstance(body, dict) or body.get("errors"):
        raise _refused("openchs token: the helpline refused the login", response.status_code)
    try:
        token = body["ss"][0][0]
    except (KeyError, IndexError, TypeError):
        raise DeliveryFailure("openchs token: no token at ss[0][0]", retryable=True,
                              status_code=response.status_code) from None
    if not isinstance(token, str) or not token:
        raise DeliveryFailure("openchs token: empty token", retryable=True,
                              status_code=response.status_code)
    log.info("openchs.token_fetched", extra={"site": site_code})
    return token


def post(site_code: str, helpline: Mapping[str, Any], http: requests.Session, path: str,
         body: dict[str, Any], what: str) -> requests.Response:
    """POST ``body`` to ``<base><path>`` with the Bearer token; a 2xx answer or a failure.

    A 401 (an expired or revoked token) is the core's to handle: it calls
    ``refresh_credentials`` (which forgets the token) and makes the call once more.
    """
    url = helpline["base_url"] + path
    token = tokens.get(site_code, helpline, http)
    response = http.post(url, json=body, headers={"Authorization": f"Bearer {token}"})
    check_response(response, what)
    if _error_body(response):
        # Some helpline builds refuse an expired session with 200 {"errors": [...]}:
        # nothing was stored. Taken as a refused session (the core logs in again once).
        raise CredentialsExpired(f"{what}: HTTP {response.status_code} with an errors "
                                 "body (an expired session?)",
                                 status_code=response.status_code)
    return response


def get(site_code: str, helpline: Mapping[str, Any], http: requests.Session, url: str,
        params: dict[str, str], what: str) -> requests.Response:
    """GET ``url`` with the Bearer token; the answer as it is (the caller judges it)."""
    token = tokens.get(site_code, helpline, http)
    return http.get(url, params=params, headers={"Authorization": f"Bearer {token}"})


def _error_body(response: requests.Response) -> bool:
    """The helpline's JSON ``errors`` key (its failure shape), in a 2xx answer."""
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and bool(body.get("errors"))


def _refused(reason: str, status: int) -> DeliveryFailure:
    """Our credentials, not the message, are refused: a site problem an operator fixes
    (or a token expiring again at once). Retried, so no message becomes a dead letter
    over it; ``sites check`` tells the operator."""
    return DeliveryFailure(f"{reason} (HTTP {status})", retryable=True, status_code=status)
