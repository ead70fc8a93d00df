"""The helpline's outbound side: callbacks to the adapter, OpenCHS style.

OpenCHS posts counsellor replies and closes to a gateway URL. Its code was written
to first obtain a token with ``{"username", "password"}`` from the gateway's token
URL and then send ``Authorization: Token <token>``; this sender does exactly that
(or uses a fixed ``callback_token``), re-fetches the token once on a 401, retries
connection errors, 5xx and 429 a few times with backoff, and records every attempt
as kind ``callbacks`` so tests can see what the adapter was sent and what it said.

All target paths live in one dict (:data:`DEFAULT_CALLBACK_PATHS`, overridable as
config ``callback_paths``) because the adapter's routes are defined elsewhere.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter

from adapter.sandbox.base import Records

#: Callback kind -> path template under ``callback_url``; ``{session_id}`` is quoted.
DEFAULT_CALLBACK_PATHS: dict[str, str] = {
    "token": "token/",
    "assign": "assign/",
    "message": "message/",
    "close": "chat/{session_id}/close/",
    "ack": "ack/",
}

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 5.0  # seconds; a sandbox should not stall a test run for longer


class CallbackError(Exception):
    """The token needed to authenticate a callback could not be obtained."""


class CallbackSender:
    """Sends one kind of callback with auth, retries and recording.

    ``config`` is read on every send so runtime changes (``/_sandbox/config``) apply
    at once. Keys used: ``callback_url``, ``callback_paths``, ``callback_token``,
    ``callback_username``, ``callback_password``, ``callback_attempts``,
    ``callback_backoff``, ``callback_timeout``.
    """

    def __init__(self, config: Callable[[], Mapping[str, Any]], records: Records) -> None:
        self._config = config
        self._records = records
        self._http = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=32)
        self._http.mount("http://", adapter)
        self._http.mount("https://", adapter)
        self._token_lock = threading.Lock()
        self._token: tuple[tuple, str] | None = None  # (credentials it was issued for, token)

    def forget_token(self) -> None:
        """Drop the cached token (on reset, or when credentials change)."""
        with self._token_lock:
            self._token = None

    def send(
        self, kind: str, body: dict, *, session_id: str | None = None, attempts: int | None = None
    ) -> dict[str, Any]:
        """POST ``body`` to the ``kind`` callback; return (and record) the outcome.

        The outcome is ``{"callback", "url", "session_id", "body", "ok", "status",
        "response", "attempts", "error"}`` (``callback`` is ``kind``); ``ok`` means the
        adapter answered 2xx.
        """
        config = self._config()
        outcome: dict[str, Any] = {
            "callback": kind,
            "url": None,
            "session_id": session_id,
            "body": body,
            "ok": False,
            "status": None,
            "response": None,
            "attempts": 0,
            "error": None,
        }
        if not config.get("callback_url"):
            outcome["error"] = "no callback_url configured"
        else:
            outcome["url"] = self._url(config, kind, session_id)
            self._deliver(config, outcome, attempts or int(config["callback_attempts"]))
        self._records.add("callbacks", outcome)
        return outcome

    def _deliver(self, config: Mapping[str, Any], outcome: dict, attempts: int) -> None:
        """Try up to ``attempts`` times, sleeping with exponential backoff in between."""
        for attempt in range(1, attempts + 1):
            outcome["attempts"] = attempt
            delay = float(config["callback_backoff"]) * 2 ** (attempt - 1)
            try:
                response = self._post_authenticated(config, outcome["url"], outcome["body"])
            except (requests.RequestException, CallbackError) as exc:
                outcome["error"] = f"{type(exc).__name__}: {exc}"
            else:
                outcome.update(status=response.status_code, response=_body_of(response))
                outcome["error"] = None
                if response.ok:
                    outcome["ok"] = True
                    return
                if response.status_code not in RETRYABLE_STATUSES:
                    return
                delay = _retry_after(response, delay)
            if attempt < attempts:
                time.sleep(delay)

    def _post_authenticated(
        self, config: Mapping[str, Any], url: str, body: dict
    ) -> requests.Response:
        """POST with the callback auth; on a 401 fetch a fresh token and try once more."""
        response = self._post(config, url, body, self._auth_header(config))
        if response.status_code == 401 and _uses_login(config):
            self.forget_token()
            response = self._post(config, url, body, self._auth_header(config))
        return response

    def _post(
        self, config: Mapping[str, Any], url: str, body: dict, headers: dict[str, str]
    ) -> requests.Response:
        return self._http.post(url, json=body, headers=headers, timeout=config["callback_timeout"])

    def _auth_header(self, config: Mapping[str, Any]) -> dict[str, str]:
        if config.get("callback_token"):
            return {"Authorization": f"Token {config['callback_token']}"}
        if _uses_login(config):
            return {"Authorization": f"Token {self._login(config)}"}
        return {}

    def _login(self, config: Mapping[str, Any]) -> str:
        """The cached token, or a new one from ``<callback_url>token/``."""
        credentials = (
            config["callback_url"],
            config["callback_username"],
            config["callback_password"],
        )
        with self._token_lock:
            if self._token and self._token[0] == credentials:
                return self._token[1]
            token = self._fetch_token(config)
            self._token = (credentials, token)
            return token

    def _fetch_token(self, config: Mapping[str, Any]) -> str:
        url = self._url(config, "token", None)
        body = {"username": config["callback_username"], "password": config["callback_password"]}
        record: dict[str, Any] = {"callback": "token", "url": url, "ok": False, "status": None}
        try:
            response = self._http.post(url, json=body, timeout=config["callback_timeout"])
        except requests.RequestException as exc:
            record["error"] = type(exc).__name__
            self._records.add("callbacks", record)
            raise CallbackError(f"token request failed: {type(exc).__name__}") from exc
        answer = _body_of(response)
        token = answer.get("token") if response.ok and isinstance(answer, dict) else None
        record.update(status=response.status_code, ok=bool(token))
        self._records.add("callbacks", record)  # never the password nor the token
        if not token:
            raise CallbackError(f"token request answered {response.status_code} without a token")
        return str(token)

    @staticmethod
    def _url(config: Mapping[str, Any], kind: str, session_id: str | None) -> str:
        paths = {**DEFAULT_CALLBACK_PATHS, **(config.get("callback_paths") or {})}
        path = paths[kind].format(session_id=quote(str(session_id or ""), safe=""))
        return config["callback_url"].rstrip("/") + "/" + path.lstrip("/")


def _uses_login(config: Mapping[str, Any]) -> bool:
    return bool(config.get("callback_username")) and not config.get("callback_token")


def _body_of(response: requests.Response) -> Any:
    """The JSON answer if there is one, else (a bounded slice of) its text."""
    try:
        return response.json()
    except ValueError:
        return response.text[:500]


def _retry_after(response: requests.Response, default: float) -> float:
    """Honour a numeric ``Retry-After`` (bounded), else keep the backoff delay."""
    try:
        return min(float(response.headers["Retry-After"]), MAX_RETRY_AFTER)
    except (KeyError, ValueError):
        return default
