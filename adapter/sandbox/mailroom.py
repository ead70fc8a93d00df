"""Weni mailroom's generic-ticketer side: the far peer of the ``weni-ticketer`` dialect.

Read from ``weni-ai/mailroom`` ``services/tickets/generic/`` (``service.go``, ``client.go``,
``web.go``, ``history.go``) and the core code they call; ``docs/weni-ticketer.md`` is the
admin-facing account. The sandbox plays the platform:

- **Platform → ticketer**, triggered over the control API, sent to the configured
  ``base_url`` with ``Authorization: Bearer <api_token>``, ``Content-Type``,
  ``X-API-Version: 1``, one ``X-Request-Id`` per request (kept across its retries) and an
  ``Idempotency-Key``: open (``open-<ticket>``; a 409 whose ``details.external_id`` is a
  string is taken as success), forward (``forward-<msg>``, only while the ticket is
  open; errors ignored as mailroom ignores them), close (``close-<ticket>-<unixnano>``,
  ``closed_by {platform, system}``, no ``reason``; 409 counts as closed), reopen
  (``reopen-<ticket>-<unixnano>``; any error keeps the ticket closed), history (batch
  mode, 50 a batch, ``history-<ticket>-<batch index>``; or ``one_by_one`` to the forward
  route with ``history-<ticket>-<msg>``; run as a task tried up to 3 times, each try from
  the first batch). Retries as mailroom's HTTP config and gocommon's ``httpx`` do (2
  retries, backoff 5 s then 10 s ±25 %): after any answer, 2xx included, whose
  ``Retry-After`` is non-zero and within the backoff, or — these requests all carry a
  key — on no answer or a status above 501 (so never on 500, 501 or a bare 429).
- **Ticketer → platform** at ``/mr/tickets/types/generic/event_callback/<ticketer_uuid>``
  ``/messages``, ``/tickets/close``, ``/tickets/reopen``: checks in web.go's order
  (ticketer, 1 MB body, HMAC signature, timestamp if sent, payload), answering with the
  same statuses and ``{error, message}`` codes. Agent messages are "sent to the contact"
  (kind ``messages``) every time they arrive — no dedupe by ``message_external_id``, and
  also to a closed ticket, as ``LookupTicketByExternalID`` does not look at the status. A
  partner close or reopen is echoed back to the partner (``POST .../close|reopen``) inside
  the callback, because web.go calls ``tickets.Close/Reopen`` with ``externally=true``;
  if the echo fails the callback answers 500 and the ticket keeps its state.

Kinds recorded: ``requests`` (every non-control request), ``outbound`` (every HTTP attempt
made to the ticketer, token masked), ``callbacks`` (every callback, accepted or refused,
with status and answer), ``messages`` (agent messages delivered to the contact),
``tickets`` (ticket state changes).

Control API additions (JSON bodies; every answer shows what the ticketer answered, with
each attempt under ``calls``):

- ``GET /_sandbox/tickets`` and ``/_sandbox/tickets/<uuid>``: tickets and their state.
- ``POST /_sandbox/tickets/open`` ``{contact{uuid,id,name,urns,language}, topic (a
  configured uuid, an object, or null; default the first configured), body, assignee,
  flow, channel, ticket_uuid}`` → ``{ok, ticket_uuid, external_id, ticket, request,
  status, response, calls, error}``. A failed open makes no ticket.
- ``POST /_sandbox/tickets/<uuid>/forward`` ``{text, attachments, msg_uuid ("" for none),
  metadata, msg_external_id}``; 409 when the ticket is closed (mailroom forwards to open
  tickets only).
- ``POST /_sandbox/tickets/<uuid>/close`` ``{force}`` and ``/reopen``: the platform side.
- ``POST /_sandbox/tickets/<uuid>/history`` ``{messages: [{uuid, direction "in"|"out",
  text, attachments, created_on, urn, status}]}``: the contact's messages in mailroom's
  store; those outside the window or with status ``F`` are left out, as its query does.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import re
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import requests
from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from adapter.sandbox.base import (
    CONTROL_PREFIX,
    Records,
    SandboxState,
    install_control_api,
    json_object,
    merge_config,
)
from adapter.sandbox.faults import Faults

log = logging.getLogger(__name__)

CALLBACK_PREFIX = "/mr/tickets/types/generic/event_callback/"
TICKETER_PATTERN = re.compile(r"^[a-f0-9\-]+$")  # chi route: {ticketer:[a-f0-9\-]+}
MAX_WEBHOOK_BODY = 1 << 20  # web.go maxWebhookBodyBytes
REPLAY_WINDOW = 300.0  # seconds, web.go replayWindow
MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024  # tickets.FetchFile
API_VERSION = "1"

DEFAULT_TICKETER_UUID = "6a1f2c3d-4b5e-4f60-8a71-92b3c4d5e6f7"

DEFAULT_CONFIG: dict[str, Any] = {
    # The ticketer's config in the workspace (what an admin enters).
    "base_url": None,  # the partner's base URL, e.g. http://127.0.0.1:8000
    "api_token": "sandbox-api-token",
    "webhook_secret": "sandbox-webhook-secret",
    "skip_webhook_hmac": False,  # "true"/"1"/"yes" (any case) or True
    "ticketer_uuid": DEFAULT_TICKETER_UUID,
    "topics": {},  # topic uuid -> {"name": ..., "queue_uuid": ...}
    "project_uuid": None,
    "project_name": None,
    "history_mode": "batch",  # or "one_by_one"
    "history_batch_size": 50,
    # The platform around it.
    "domain": None,  # webhook_base_url is https://<domain>/mr/...; None: this sandbox's URL
    "redact_urns": False,  # the org's URN redaction policy
    "timeout": 15.0,  # WebhooksTimeout
    "retries": 2,  # WebhooksMaxRetries
    "retry_backoff": 5.0,  # WebhooksInitialBackoff, seconds; doubles each retry
    "retry_jitter": 0.5,  # WebhooksBackoffJitter
    "history_attempts": 3,  # the send-history task is tried this many times
    "fetch_attachments": True,  # fetch partner attachment URLs, as SendReply needs them
    "record_requests": True,
}

RECORD_KINDS = ("requests", "outbound", "callbacks", "messages", "tickets")
CALLBACK_ROUTES = {"messages": "messages", "tickets/close": "close", "tickets/reopen": "reopen"}


class OperationError(Exception):
    """An outbound operation failed the way mailroom's service would return an error."""

    def __init__(self, message: str, calls: list[dict] | None = None) -> None:
        super().__init__(message)
        self.calls = calls or []


def mailroom_error(code: str, message: str) -> dict[str, str]:
    """web.go's ``errBody``: the contract's error envelope."""
    return {"error": code, "message": message}


def _skip_hmac(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value or "").strip().lower() in ("true", "1", "yes")


def go_time(ns: int | None = None) -> str:
    """A UTC instant as Go marshals ``time.Time`` (RFC3339Nano: trailing zeros dropped)."""
    ns = time.time_ns() if ns is None else ns
    seconds, frac = divmod(ns, 1_000_000_000)
    text = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if frac:
        text += "." + f"{frac:09d}".rstrip("0")
    return text + "Z"


RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$"
)


def parse_rfc3339(text: str) -> datetime | None:
    """Go's ``time.Parse(time.RFC3339, ...)``: ``T``, seconds, ``Z`` or an offset."""
    match = RFC3339.match(text)
    if not match:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")[:19] + _zone(match))
    except ValueError:
        return None


def _zone(match: re.Match[str]) -> str:
    zone = match.group(8)
    return "+00:00" if zone == "Z" else zone


def verify_signature(secret: str, body: bytes, header: str) -> bool:
    """web.go ``verifySignature``: ``sha256=<hex>`` or ``<hex>``, constant-time."""
    if not secret or not header:
        return False
    provided = header.removeprefix("sha256=").strip()
    if not provided:
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), provided.lower().encode())


def verify_timestamp(header: str, now: float) -> bool:
    """web.go ``verifyTimestamp``: RFC3339, else base-10 unix seconds; within ±5 min."""
    parsed = parse_rfc3339(header)
    if parsed is not None:
        instant = parsed.timestamp()
    elif re.fullmatch(r"[+-]?\d+", header) and -(2**63) <= int(header) < 2**63:
        if int(header) == 0:
            return False
        instant = float(int(header))
    else:
        return False
    return abs(now - instant) <= REPLAY_WINDOW


def sign(secret: str, body: bytes) -> str:
    """The ``X-Webhook-Signature`` value a partner sends for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class MailroomState(SandboxState):
    """Tickets, records, faults and config of one sandbox mailroom."""

    kind = "mailroom"

    def __init__(self, config: Mapping[str, Any]) -> None:
        faults = Faults(
            lambda status, message: mailroom_error("sandbox_fault", message),
            targets=lambda path: path.startswith(CALLBACK_PREFIX),
        )
        super().__init__(config, Records(RECORD_KINDS), faults)
        self.http = requests.Session()
        self._clear()

    def _clear(self) -> None:
        self.tickets: dict[str, dict[str, Any]] = {}  # ticket uuid -> ticket (insertion order)
        self.contact_ids = iter(range(1001, 10**9))

    def reset(self) -> None:
        with self.lock:
            super().reset()
            self._clear()

    def configure(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        ticketer = changes.get("ticketer_uuid")
        if ticketer is not None and not TICKETER_PATTERN.match(str(ticketer)):
            raise ValueError("ticketer_uuid must be lowercase hex and hyphens (mailroom's route)")
        return super().configure(changes)

    def ticket_by_external_id(self, external_id: str) -> dict[str, Any] | None:
        """``LookupTicketByExternalID``: any status; the first ticket holding that id."""
        with self.lock:
            for ticket in self.tickets.values():
                if ticket["external_id"] == external_id:
                    return ticket
        return None

    def set_status(self, ticket: dict[str, Any], status: str, by: str) -> None:
        with self.lock:
            ticket["status"] = status
            ticket["closed_at" if status == "closed" else "reopened_at"] = go_time()
        self.records.add(
            "tickets", {"ticket_uuid": ticket["ticket_uuid"], "status": status, "by": by}
        )
        log.info("ticket %s %s by %s", ticket["ticket_uuid"], status, by)

    # -- platform -> ticketer ---------------------------------------------------------------

    def call(
        self, operation: str, ticket_uuid: str, route: str, body: dict, key: str
    ) -> dict[str, Any]:
        """One request as ``Client.request`` + ``httpx.DoTrace`` make it, with retries.

        Returns ``{"status", "response", "error", "calls"}``; ``error`` is the
        ``ClientError``/transport text mailroom would see, None on a 2xx.
        """
        config = self.config
        base = config["base_url"]
        if not base:
            raise OperationError("no base_url configured for the ticketer")
        url = str(base).rstrip("/") + route
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        headers = {
            "Authorization": f"Bearer {config['api_token']}",
            "Content-Type": "application/json",
            "X-API-Version": API_VERSION,
            "X-Request-Id": str(uuid.uuid4()),
        }
        if key:
            headers["Idempotency-Key"] = key
        calls: list[dict[str, Any]] = []
        retries = int(config["retries"])
        for attempt in range(retries + 1):
            outcome = self._attempt(operation, ticket_uuid, url, headers, data, body, attempt + 1)
            calls.append(outcome)
            if attempt == retries:
                break
            backoff = float(config["retry_backoff"]) * 2**attempt
            backoff *= 1 + float(config["retry_jitter"]) * (random.random() - 0.5)
            if not _should_retry(outcome, backoff, idempotent=bool(key)):
                break
            time.sleep(backoff)
        last = calls[-1]
        return {
            "status": last["status"],
            "response": last["response"],
            "error": last["error"],
            "calls": calls,
        }

    def _attempt(
        self,
        operation: str,
        ticket_uuid: str,
        url: str,
        headers: dict[str, str],
        data: bytes,
        body: dict,
        attempt: int,
    ) -> dict[str, Any]:
        outcome: dict[str, Any] = {
            "operation": operation,
            "ticket_uuid": ticket_uuid,
            "attempt": attempt,
            "url": url,
            "headers": {**headers, "Authorization": "Bearer ***"},
            "idempotency_key": headers.get("Idempotency-Key"),
            "request_id": headers["X-Request-Id"],
            "body": body,
            "status": None,
            "response": None,
            "retry_after": None,
            "error": None,
        }
        try:
            answer = self.http.post(
                url, data=data, headers=headers, timeout=float(self.config["timeout"])
            )
        except requests.RequestException as exc:
            outcome["error"] = type(exc).__name__
        else:
            outcome["status"] = answer.status_code
            outcome["response"] = _answer_body(answer)
            outcome["retry_after"] = answer.headers.get("Retry-After")
            if answer.status_code >= 400:
                outcome["error"] = _client_error(answer.status_code, outcome["response"])
        self.records.add("outbound", outcome)
        log.info(
            "%s ticket %s attempt %d -> %s", operation, ticket_uuid, attempt, outcome["status"]
        )
        return outcome

    def webhook_base_url(self) -> str | None:
        """``metadata.webhook_base_url``: mailroom builds ``https://<Domain>/mr/...``.

        ``domain`` None: this sandbox's own address (so a partner can call it back);
        ``""``: left out, as mailroom does when it has no Domain configured.
        """
        domain = self.config["domain"]
        if domain == "":
            return None
        root = f"https://{domain}" if domain else request.host_url.rstrip("/")
        return f"{root}{CALLBACK_PREFIX.rstrip('/')}/{self.config['ticketer_uuid']}"


def _answer_body(answer: requests.Response) -> Any:
    if not answer.content:
        return None
    try:
        return answer.json()
    except ValueError:
        return answer.text[:2000]


def _client_error(status: int, body: Any) -> str:
    """``ClientError.Error()``: ``code: message`` when the partner gave a code."""
    if isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"]:
        message = body.get("message") if isinstance(body.get("message"), str) else ""
        return f"{body['error']}: {message}"
    return f"HTTP {status}"


def _should_retry(outcome: Mapping[str, Any], backoff: float, idempotent: bool) -> bool:
    """gocommon ``httpx.DefaultShouldRetry``, asked after every answer (2xx included).

    A ``Retry-After`` (whole seconds or an HTTP date) that is non-zero and no longer than
    the backoff asks for a retry, whatever the status; otherwise a request carrying an
    ``Idempotency-Key`` is retried on no answer or a status above 501. The wait is the
    backoff either way (``time.Sleep(backoff)``), never the Retry-After itself.
    """
    requested = _retry_after_seconds(outcome.get("retry_after"))
    if requested is not None and requested != 0 and requested <= backoff:
        return True
    status = outcome.get("status")
    return idempotent and (status is None or status > 501)


def _retry_after_seconds(value: Any) -> float | None:
    """``httpx.ParseRetryAfter``: an HTTP date (0 when past) or ``strconv.Atoi`` seconds."""
    if not value:
        return None
    try:
        moment = parsedate_to_datetime(str(value))
    except (TypeError, ValueError, IndexError):
        moment = None
    if moment is not None:
        delta = moment.timestamp() - time.time()
        return delta if delta >= 0 else 0.0
    if re.fullmatch(r"[+-]?\d+", str(value)):
        return float(int(str(value)))
    return 0.0


# -- typed decoding, as encoding/json into mailroom's structs ---------------------------------


class DecodeError(ValueError):
    pass


def _field(obj: Mapping[str, Any], name: str) -> Any:
    """Go matches JSON keys to fields exactly, else case-insensitively."""
    if name in obj:
        return obj[name]
    for key, value in obj.items():
        if key.lower() == name.lower():
            return value
    return None


def _typed(value: Any, kind: str, where: str) -> Any:
    """``value`` if it fits Go's field type ``kind`` (or is null); else a DecodeError."""
    if value is None:
        return None
    ok = {
        "string": isinstance(value, str),
        "object": isinstance(value, dict),
        "array": isinstance(value, list),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "time": isinstance(value, str),
    }[kind]
    if not ok:
        raise DecodeError(
            f"json: cannot unmarshal {_json_kind(value)} into Go struct field {where}"
        )
    if kind == "time" and parse_rfc3339(value) is None:
        raise DecodeError(f'parsing time "{value}" as RFC3339: cannot parse')
    return value


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), "value")


def _no_constant(name: str) -> Any:
    raise ValueError(f"invalid character {name[0]!r} looking for beginning of value")


def decode(raw: bytes, fields: Mapping[str, str], struct: str) -> dict[str, Any]:
    """``UnmarshalAndValidateWithLimit``: typed fields, then ``external_id`` required."""
    try:
        # Go replaces invalid UTF-8 with U+FFFD and knows no NaN/Infinity.
        parsed = json.loads(raw.decode("utf-8", "replace"), parse_constant=_no_constant)
    except ValueError as exc:
        raise DecodeError(
            "unexpected end of JSON input" if not raw.strip() else f"invalid JSON: {exc.msg}"
        ) from exc
    if parsed is None:
        parsed = {}
    if not isinstance(parsed, dict):
        raise DecodeError(
            f"json: cannot unmarshal {_json_kind(parsed)} into Go value of type {struct}"
        )
    out = {
        name: _typed(_field(parsed, name), kind, f"{struct}.{name}")
        for name, kind in fields.items()
    }
    sender = out.get("sender") or out.get("closed_by") or out.get("reopened_by")
    if isinstance(sender, dict):
        for name in ("type", "id", "name", "email"):
            _typed(sender.get(name), "string", f"{struct}.{name}")
    for att in out.get("attachments") or []:
        if not isinstance(att, dict) and att is not None:
            raise DecodeError(
                f"json: cannot unmarshal {_json_kind(att)} into Go struct field Attachment"
            )
        if att:
            _typed(att.get("url"), "string", "Attachment.url")
            _typed(att.get("content_type"), "string", "Attachment.content_type")
    if not out.get("external_id"):
        raise DecodeError("field 'external_id' is required")
    return out


MESSAGE_FIELDS = {
    "external_id": "string",
    "message_external_id": "string",
    "direction": "string",
    "sender": "object",
    "text": "string",
    "attachments": "array",
    "metadata": "object",
    "sent_at": "time",
}
CLOSE_FIELDS = {
    "external_id": "string",
    "closed_by": "object",
    "reason": "string",
    "metadata": "object",
    "closed_at": "time",
}
REOPEN_FIELDS = {
    "external_id": "string",
    "reopened_by": "object",
    "metadata": "object",
    "reopened_at": "time",
}


# -- the app ------------------------------------------------------------------------------


def create_mailroom_app(config: Mapping[str, Any] | None = None) -> Flask:
    """A mailroom sandbox app; ``config`` overrides :data:`DEFAULT_CONFIG` (unknown keys fail)."""
    settings = merge_config(DEFAULT_CONFIG, config)
    if not TICKETER_PATTERN.match(str(settings["ticketer_uuid"])):
        raise ValueError("ticketer_uuid must be lowercase hex and hyphens (mailroom's route)")
    if settings["history_mode"] not in ("batch", "one_by_one"):
        raise ValueError("history_mode must be batch or one_by_one")
    state = MailroomState(settings)
    app = Flask(__name__)
    app.extensions["sandbox"] = state
    install_control_api(app, state)
    app.after_request(_callback_recorder(state))
    app.register_error_handler(HTTPException, _http_error)
    for suffix, name in CALLBACK_ROUTES.items():
        app.add_url_rule(
            f"{CALLBACK_PREFIX}<ticketer>/{suffix}",
            f"callback_{name}",
            _callback_view(state, name),
            methods=["POST"],
        )
    _add_ticket_controls(app, state)
    return app


def _http_error(exc: HTTPException) -> tuple[Response, int]:
    """chi's NotFound / MethodNotAllowed handlers, as mailroom's server answers them."""
    if exc.code == 405:
        return jsonify({"error": f"illegal method: {request.method}"}), 405
    if exc.code == 404:
        return jsonify({"error": f"not found: {_request_uri()}"}), 404
    return jsonify({"error": exc.description or exc.name}), exc.code or 500


def _request_uri() -> str:
    query = request.query_string.decode("latin-1")
    return request.path + (f"?{query}" if query else "")


# -- partner -> platform callbacks --------------------------------------------------------


def _callback_recorder(state: MailroomState) -> Callable[[Response], Response]:
    def record(response: Response) -> Response:
        if not request.path.startswith(CALLBACK_PREFIX):
            return response
        seen = g.get("callback", {})
        raw = request.get_data()
        state.records.add(
            "callbacks",
            {
                "route": seen.get("route") or request.path.rsplit("/", 1)[-1],
                "path": request.path,
                "accepted": 200 <= response.status_code < 300,
                "status": response.status_code,
                "answer": response.get_json(silent=True),
                "refused_by_fault": "route" not in seen and response.status_code >= 400,
                "signature": request.headers.get("X-Webhook-Signature"),
                "timestamp": request.headers.get("X-Webhook-Timestamp"),
                "request_id": request.headers.get("X-Request-Id"),
                "body": raw.decode("utf-8", "replace") if len(raw) <= MAX_WEBHOOK_BODY else None,
                "body_bytes": len(raw),
                "ticket_uuid": seen.get("ticket_uuid"),
                "message_uuid": seen.get("message_uuid"),
            },
        )
        return response

    return record


def _callback_view(state: MailroomState, route: str) -> Callable[[str], Any]:
    handler = {"messages": _agent_message, "close": _partner_close, "reopen": _partner_reopen}[
        route
    ]

    def view(ticketer: str) -> Any:
        g.callback = {"route": route}
        if not TICKETER_PATTERN.match(ticketer):
            return jsonify({"error": f"not found: {_request_uri()}"}), 404
        refused = _read_webhook(state, ticketer)
        if refused is not None:
            return refused
        answer, status = handler(state, request.get_data())
        return jsonify(answer), status

    return view


def _read_webhook(state: MailroomState, ticketer: str) -> tuple[Response, int] | None:
    """web.go ``readWebhook``: ticketer, body size, HMAC, timestamp — in that order."""
    config = state.config
    if ticketer != config["ticketer_uuid"]:
        return jsonify(mailroom_error("ticketer_not_found", "no such ticketer")), 404
    body = request.get_data()
    if len(body) > MAX_WEBHOOK_BODY:
        return jsonify(mailroom_error("payload_too_large", "request body exceeds limit")), 413
    if _skip_hmac(config["skip_webhook_hmac"]):
        return None
    secret = str(config["webhook_secret"] or "")
    if not secret:
        return jsonify(mailroom_error("misconfigured", "ticketer has no webhook secret")), 500
    if not verify_signature(secret, body, request.headers.get("X-Webhook-Signature", "")):
        return jsonify(mailroom_error("invalid_signature", "HMAC verification failed")), 401
    stamp = request.headers.get("X-Webhook-Timestamp", "")
    if stamp and not verify_timestamp(stamp, time.time()):
        message = "X-Webhook-Timestamp outside the accepted window"
        return jsonify(mailroom_error("expired_request", message)), 401
    return None


def _agent_message(state: MailroomState, raw: bytes) -> tuple[dict, int]:
    try:
        payload = decode(raw, MESSAGE_FIELDS, "generic.agentMessagePayload")
    except DecodeError as exc:
        return mailroom_error("invalid_payload", str(exc)), 400
    attachments = payload["attachments"] or []
    if not (payload["text"] or "").strip() and not attachments:
        return mailroom_error("empty_message", "text or attachments are required"), 400
    if not payload["external_id"].strip():
        return mailroom_error("invalid_payload", "external_id is required"), 400
    ticket = state.ticket_by_external_id(payload["external_id"])
    if ticket is None:
        return mailroom_error("ticket_not_found", "no such ticket for the given external_id"), 404
    g.callback["ticket_uuid"] = ticket["ticket_uuid"]
    files = []
    for att in attachments:
        url = (att or {}).get("url") or ""
        if not url:
            continue
        fetched = _fetch(state, url)
        if isinstance(fetched, str):
            return mailroom_error(
                "attachment_fetch_failed", f"failed fetching {url}: {fetched}"
            ), 502
        files.append(fetched)
    message_uuid = str(uuid.uuid4())
    g.callback["message_uuid"] = message_uuid
    state.records.add(
        "messages",
        {
            "ticket_uuid": ticket["ticket_uuid"],
            "contact_uuid": ticket["contact"]["uuid"],
            "ticket_status": ticket["status"],
            "message_uuid": message_uuid,
            "message_external_id": payload["message_external_id"],
            "external_id": payload["external_id"],
            "text": payload["text"] or "",
            "attachments": files,
            "sender": payload["sender"],
            "sent_at": payload["sent_at"],
        },
    )
    log.info("agent message %s sent on ticket %s", message_uuid, ticket["ticket_uuid"])
    return {
        "status": "sent",
        "ticket_uuid": ticket["ticket_uuid"],
        "message_uuid": message_uuid,
    }, 200


def _fetch(state: MailroomState, url: str) -> dict[str, Any] | str:
    """``tickets.FetchFile``: GET, 2xx, at most 10 MB; an error text when it fails."""
    if not state.config["fetch_attachments"]:
        return {"url": url, "content_type": None, "size": None}
    try:
        with state.http.get(url, timeout=float(state.config["timeout"]), stream=True) as answer:
            content = answer.raw.read(MAX_ATTACHMENT_BYTES + 1, decode_content=True)
            if len(content) > MAX_ATTACHMENT_BYTES:
                return "webhook response body exceeds 10485760 bytes limit"
            if answer.status_code // 100 != 2:
                return "fetch returned non-200 response"
            content_type = answer.headers.get("Content-Type", "").split(";")[0].strip()
    except requests.RequestException as exc:
        return type(exc).__name__
    return {"url": url, "content_type": content_type or None, "size": len(content)}


def _partner_close(state: MailroomState, raw: bytes) -> tuple[dict, int]:
    try:
        payload = decode(raw, CLOSE_FIELDS, "generic.closeTicketPayload")
    except DecodeError as exc:
        return mailroom_error("invalid_payload", str(exc)), 400
    if not payload["external_id"].strip():
        return mailroom_error("invalid_payload", "external_id is required"), 400
    ticket = state.ticket_by_external_id(payload["external_id"])
    if ticket is None:
        return mailroom_error("ticket_not_found", "no such ticket for the given external_id"), 404
    g.callback["ticket_uuid"] = ticket["ticket_uuid"]
    answer = {"status": "closed", "ticket_uuid": ticket["ticket_uuid"]}
    if ticket["status"] == "closed":
        return answer, 200  # idempotent: the partner may retry
    # web.go calls tickets.Close(..., externally=true): CloseTickets echoes the close to
    # the partner before marking the ticket closed, and fails the callback if that fails.
    try:
        _close_at_partner(state, ticket, echo=True)
    except OperationError as exc:
        return mailroom_error("close_failed", f"error closing ticket: {exc}"), 500
    state.set_status(ticket, "closed", "partner")
    return answer, 200


def _partner_reopen(state: MailroomState, raw: bytes) -> tuple[dict, int]:
    try:
        payload = decode(raw, REOPEN_FIELDS, "generic.reopenTicketPayload")
    except DecodeError as exc:
        return mailroom_error("invalid_payload", str(exc)), 400
    ticket = state.ticket_by_external_id(payload["external_id"])
    if ticket is None:
        return mailroom_error("ticket_not_found", "no such ticket for the given external_id"), 404
    g.callback["ticket_uuid"] = ticket["ticket_uuid"]
    answer = {"status": "open", "ticket_uuid": ticket["ticket_uuid"]}
    if ticket["status"] == "open":
        return answer, 200
    try:
        _reopen_at_partner(state, ticket, echo=True)
    except OperationError as exc:
        return mailroom_error("reopen_failed", str(exc)), 500
    state.set_status(ticket, "open", "partner")
    return answer, 200


# -- platform -> partner operations ---------------------------------------------------------


def _route(template: str, external_id: str) -> str:
    return template.replace("{external_id}", quote(external_id, safe="!$&'()*+,;=:@"))


def _close_at_partner(state: MailroomState, ticket: dict[str, Any], echo: bool) -> dict | None:
    """``service.Close`` for one ticket; a 409 counts as closed. Raises on other errors."""
    if not ticket["external_id"]:
        return None
    now = time.time_ns()
    body = {
        "ticket_id": ticket["ticket_uuid"],
        "external_id": ticket["external_id"],
        "closed_by": {"type": "platform", "id": "system"},
        "closed_at": go_time(now),
    }
    key = f"close-{ticket['ticket_uuid']}-{now}"
    operation = "close_echo" if echo else "close"
    result = state.call(
        operation,
        ticket["ticket_uuid"],
        _route("/v1/tickets/{external_id}/close", ticket["external_id"]),
        body,
        key,
    )
    if result["error"] and result["status"] != 409:
        raise OperationError(
            f"error closing generic ticket {ticket['ticket_uuid']}: {result['error']}"
        )
    if result["status"] != 409:
        _check_response(result["response"], {"status": "string"}, "close")
    return result


def _reopen_at_partner(state: MailroomState, ticket: dict[str, Any], echo: bool) -> dict | None:
    """``service.Reopen`` for one ticket; any error (also 409/422) is an error."""
    if not ticket["external_id"]:
        return None
    now = time.time_ns()
    body = {
        "ticket_id": ticket["ticket_uuid"],
        "external_id": ticket["external_id"],
        "reopened_by": {"type": "platform", "id": "system"},
        "reopened_at": go_time(now),
    }
    key = f"reopen-{ticket['ticket_uuid']}-{now}"
    result = state.call(
        "reopen_echo" if echo else "reopen",
        ticket["ticket_uuid"],
        _route("/v1/tickets/{external_id}/reopen", ticket["external_id"]),
        body,
        key,
    )
    if result["error"]:
        raise OperationError(
            f"error reopening generic ticket {ticket['ticket_uuid']}: {result['error']}"
        )
    return result


def _check_response(body: Any, fields: Mapping[str, str], what: str) -> dict[str, Any]:
    """Decode a 2xx answer as mailroom does: empty is fine, else typed JSON fields."""
    if body is None:
        return {}
    if isinstance(body, str):
        raise OperationError(f"error unmarshalling {what} response: invalid JSON")
    if not isinstance(body, dict):
        raise OperationError(f"error unmarshalling {what} response: not an object")
    try:
        return {name: _typed(_field(body, name), kind, name) for name, kind in fields.items()}
    except DecodeError as exc:
        raise OperationError(f"error unmarshalling {what} response: {exc}") from exc


def _open(state: MailroomState, spec: dict[str, Any]) -> tuple[dict, int]:
    """``service.Open``: build the OpenRequest, POST it, take the external_id."""
    config = state.config
    contact = dict(spec.get("contact") or {})
    contact.setdefault("uuid", str(uuid.uuid4()))
    contact.setdefault("id", next(state.contact_ids))
    contact.setdefault("name", "")
    contact.setdefault("urns", ["whatsapp:254700000001"])
    urns = [str(u) for u in contact["urns"] or []]
    if not urns:
        return {"ok": False, "error": "contact has no URNs to open generic ticket with"}, 422
    topic, problem = _topic(config, spec)
    if problem:
        return {"errors": [problem]}, 400
    ticket_uuid = str(spec.get("ticket_uuid") or uuid.uuid4())
    if ticket_uuid in state.tickets:
        return {"errors": [f"ticket {ticket_uuid} already exists"]}, 400
    dto: dict[str, Any] = {"uuid": contact["uuid"]}
    name = str(contact["id"]) if config["redact_urns"] else contact["name"]
    if name:
        dto["name"] = name
    dto["urn"] = urns[0]
    dto["urns"] = urns
    if contact.get("language"):
        dto["language"] = contact["language"]
    body: dict[str, Any] = {"ticket_id": ticket_uuid}
    if topic:
        body["topic"] = topic
    body["contact"] = dto
    if spec.get("body"):
        body["body"] = spec["body"]
    if spec.get("assignee"):
        assignee = {"email": spec["assignee"].get("email", "")}
        if spec["assignee"].get("name"):
            assignee["name"] = spec["assignee"]["name"]
        body["assignee"] = assignee
    metadata = _open_metadata(state, spec)
    if metadata:
        body["metadata"] = metadata
    body["opened_at"] = go_time()
    result: dict[str, Any] | None = None
    try:
        result = state.call("open", ticket_uuid, "/v1/tickets", body, f"open-{ticket_uuid}")
        external_id = _open_external_id(result)
    except OperationError as exc:
        # No ticket: the flow's open-ticket action takes its failure branch.
        return {
            "ok": False,
            "ticket_uuid": ticket_uuid,
            "error": str(exc),
            "request": body,
            **_calls(result),
        }, 200
    ticket = {
        "ticket_uuid": ticket_uuid,
        "external_id": external_id,
        "status": "open",
        "contact": {**contact, "urns": urns},
        "contact_display": _contact_display(config, contact, urns),
        "topic": topic,
        "body": spec.get("body") or "",
        "opened_at": body["opened_at"],
    }
    with state.lock:
        state.tickets[ticket_uuid] = ticket
    state.records.add(
        "tickets",
        {
            "ticket_uuid": ticket_uuid,
            "status": "open",
            "by": "platform",
            "external_id": external_id,
        },
    )
    return {
        "ok": True,
        "ticket_uuid": ticket_uuid,
        "external_id": external_id,
        "ticket": ticket,
        "request": body,
        **_calls(result),
    }, 200


def _calls(result: dict | None) -> dict[str, Any]:
    if not result:
        return {"status": None, "response": None, "calls": []}
    return {"status": result["status"], "response": result["response"], "calls": result["calls"]}


def _open_external_id(result: dict[str, Any]) -> str:
    if result["error"]:
        details = (
            result["response"].get("details") if isinstance(result["response"], dict) else None
        )
        if result["status"] == 409 and isinstance(details, dict):
            existing = details.get("external_id")
            if isinstance(existing, str) and existing:
                return existing  # the partner already has it open: success
        raise OperationError(f"error opening generic ticket: {result['error']}")
    answer = _check_response(
        result["response"],
        {"external_id": "string", "status": "string", "created_at": "time"},
        "open",
    )
    if not answer.get("external_id"):
        raise OperationError("generic ticketer did not return an external_id")
    return str(answer["external_id"])


def _topic(config: Mapping[str, Any], spec: Mapping[str, Any]) -> tuple[dict | None, str | None]:
    """The ticket's topic: a configured topic uuid, an explicit object, or the first one."""
    topics = config["topics"] or {}
    if "topic" not in spec:
        if not topics:
            return None, None
        chosen = next(iter(topics))
    elif spec["topic"] is None:
        return None, None
    elif isinstance(spec["topic"], dict):
        given = spec["topic"]
        return _topic_dto(str(given.get("uuid", "")), given), None
    else:
        chosen = str(spec["topic"])
    if chosen not in topics:
        return None, f"unknown topic {chosen!r}; configured: {sorted(topics)}"
    return _topic_dto(chosen, topics[chosen] or {}), None


def _topic_dto(topic_uuid: str, info: Mapping[str, Any]) -> dict[str, str]:
    dto = {"uuid": topic_uuid}
    if info.get("name"):
        dto["name"] = str(info["name"])
    if info.get("queue_uuid"):
        dto["queue_uuid"] = str(info["queue_uuid"])
    return dto


def _open_metadata(state: MailroomState, spec: Mapping[str, Any]) -> dict[str, Any]:
    config = state.config
    metadata: dict[str, Any] = {}
    if config["project_uuid"]:
        metadata["project_uuid"] = config["project_uuid"]
    if config["project_name"]:
        metadata["project_name"] = config["project_name"]
    if spec.get("flow"):
        metadata["flow"] = {
            "uuid": spec["flow"].get("uuid", ""),
            "name": spec["flow"].get("name", ""),
        }
    if spec.get("channel"):
        channel = spec["channel"]
        metadata["channel"] = {key: channel.get(key, "") for key in ("uuid", "name", "address")}
    base_url = state.webhook_base_url()
    if base_url:
        metadata["webhook_base_url"] = base_url
    return metadata


def _contact_display(config: Mapping[str, Any], contact: Mapping[str, Any], urns: list[str]) -> str:
    """``GetContactDisplay``: name, else contact id (URN redaction) or URN, else Anonymous."""
    if contact.get("name"):
        return str(contact["name"])
    if config["redact_urns"]:
        return str(contact["id"])
    if urns:
        return urns[0].partition(":")[2] or urns[0]
    return "Anonymous"


def _forward(
    state: MailroomState, ticket: dict[str, Any], spec: dict[str, Any]
) -> tuple[dict, int]:
    """``service.Forward``: only for open tickets (``LoadOpenTicketsForContact``)."""
    if ticket["status"] != "open":
        return {
            "errors": ["ticket is closed: mailroom forwards contact messages to open tickets only"]
        }, 409
    msg_uuid = spec["msg_uuid"] if "msg_uuid" in spec else str(uuid.uuid4())
    body: dict[str, Any] = {
        "ticket_id": ticket["ticket_uuid"],
        "external_id": ticket["external_id"],
    }
    if msg_uuid:
        body["message_id"] = msg_uuid
    body["direction"] = "incoming"
    sender = {"type": "contact"}
    if ticket["contact"]["uuid"]:
        sender["id"] = ticket["contact"]["uuid"]
    if ticket["contact_display"]:
        sender["name"] = ticket["contact_display"]
    body["sender"] = sender
    text = spec.get("text") or ""
    if text.strip():
        body["text"] = text
    attachments = _attachments(spec.get("attachments"))
    if attachments:
        body["attachments"] = attachments
    metadata = dict(spec.get("metadata") or {})
    if spec.get("msg_external_id"):
        metadata["source_message_external_id"] = spec["msg_external_id"]
    if metadata:
        body["metadata"] = metadata
    body["sent_at"] = go_time()
    key = f"forward-{msg_uuid}" if msg_uuid else ""
    try:
        result = state.call(
            "forward",
            ticket["ticket_uuid"],
            _route("/v1/tickets/{external_id}/messages", ticket["external_id"]),
            body,
            key,
        )
    except OperationError as exc:
        return {"ok": False, "error": str(exc), "request": body, **_calls(None)}, 200
    error = result["error"]
    if not error:
        try:
            _check_response(
                result["response"], {"message_external_id": "string", "status": "string"}, "forward"
            )
        except OperationError as exc:
            error = str(exc)
    # mailroom ignores the error: the message stays with the bot, the ticket stays open.
    return {
        "ok": not error,
        "error": error,
        "message_id": msg_uuid or None,
        "request": body,
        **_calls(result),
    }, 200


def _attachments(given: Any) -> list[dict[str, str]]:
    """``["image/jpeg:https://..."]`` (mailroom's form) or ``[{content_type, url}]``."""
    out = []
    for item in given or []:
        if isinstance(item, str):
            content_type, _, url = item.partition(":")
            item = {"content_type": content_type, "url": url}
        entry = {"url": str(item.get("url", ""))}
        if item.get("content_type"):
            entry["content_type"] = str(item["content_type"])
        out.append(entry)
    return out


HISTORY_AFTER_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%M:%SZ",
    "%Y-%m-%d %H:%M:%S%z",
)


def _history_since(ticket: Mapping[str, Any]) -> datetime:
    """``resolveHistorySince`` as the task calls it (no runs): ``history_after`` or 24 h."""
    try:
        parsed = json.loads(ticket["body"])
    except ValueError:
        parsed = None
    after = parsed.get("history_after") if isinstance(parsed, dict) else None
    if isinstance(after, str) and after:
        for fmt in HISTORY_AFTER_FORMATS:
            try:
                moment = datetime.strptime(after, fmt)
            except ValueError:
                continue
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return datetime.now(UTC) - timedelta(hours=24)


def _history(
    state: MailroomState, ticket: dict[str, Any], spec: dict[str, Any]
) -> tuple[dict, int]:
    """The send-history task: select the window's messages, send, retry the task on error."""
    since = _history_since(ticket)
    messages = []
    for index, given in enumerate(spec.get("messages") or []):
        created = parse_rfc3339(str(given.get("created_on") or go_time()))
        if created is None:
            return {"errors": [f"messages[{index}].created_on is not RFC3339"]}, 400
        if created < since or given.get("status") == "F":
            continue
        messages.append({**given, "created": created})
    attempts = []
    for _ in range(max(1, int(state.config["history_attempts"]))):
        try:
            calls = _send_history(state, ticket, messages)
        except OperationError as exc:
            attempts.append({"ok": False, "error": str(exc), "calls": exc.calls})
            continue
        attempts.append({"ok": True, "error": None, "calls": calls})
        break
    last = attempts[-1]
    return {
        "ok": last["ok"],
        "error": last["error"],
        "sent_messages": len(messages),
        "attempts": attempts,
    }, 200


def _send_history(state: MailroomState, ticket: dict[str, Any], messages: list[dict]) -> list[dict]:
    if not ticket["external_id"]:
        raise OperationError("cannot send history: ticket has no external_id")
    if not messages:
        return []
    contact = ticket["contact"]
    urn = next(
        (m.get("urn", contact["urns"][0]) for m in messages if m.get("urn", contact["urns"][0])), ""
    )
    if not urn:
        raise OperationError(
            f"cannot send history: contact {contact['id']} has no URN"
            f" on {len(messages)} loaded messages"
        )
    history_contact = {"uuid": contact["uuid"]}
    if ticket["contact_display"]:
        history_contact["name"] = ticket["contact_display"]
    history_contact["urn"] = urn
    entries = [_history_entry(m, contact["uuid"]) for m in messages]
    metadata = {k: state.config[k] for k in ("project_uuid", "project_name") if state.config[k]}
    calls: list[dict] = []
    external_id = ticket["external_id"]
    if state.config["history_mode"] == "one_by_one":
        for entry in entries:
            body = {
                "ticket_id": ticket["ticket_uuid"],
                "external_id": external_id,
                "message_id": entry["message_id"],
                "direction": entry["direction"],
                "sender": (
                    {**entry["sender"], "name": ticket["contact_display"]}
                    if entry["direction"] == "incoming" and ticket["contact_display"]
                    else entry["sender"]
                ),
            }
            if entry.get("text", "").strip():  # messageRequestFromMsg trims, batch does not
                body["text"] = entry["text"]
            if "attachments" in entry:
                body["attachments"] = entry["attachments"]
            body["sent_at"] = entry["sent_at"]
            key = f"history-{ticket['ticket_uuid']}-{entry['message_id']}"
            calls.append(
                _history_call(state, ticket, "/v1/tickets/{external_id}/messages", body, key, calls)
            )
        return calls
    size = max(1, int(state.config["history_batch_size"] or 50))
    for index in range(0, len(entries), size):
        body = {
            "ticket_id": ticket["ticket_uuid"],
            "external_id": external_id,
            "contact": history_contact,
            "messages": entries[index : index + size],
        }
        if metadata:
            body["metadata"] = metadata
        key = f"history-{ticket['ticket_uuid']}-{index // size}"
        calls.append(
            _history_call(state, ticket, "/v1/tickets/{external_id}/history", body, key, calls)
        )
    return calls


def _history_call(
    state: MailroomState, ticket: dict, route: str, body: dict, key: str, earlier: list[dict]
) -> dict:
    result = state.call(
        "history", ticket["ticket_uuid"], _route(route, ticket["external_id"]), body, key
    )
    problem = result["error"]
    if not problem:
        try:
            _check_response(
                result["response"], {"status": "string", "messages_received": "int"}, "history"
            )
        except OperationError as exc:
            problem = str(exc)
    if problem:
        raise OperationError(f"error sending ticket history: {problem}", [*earlier, result])
    return result


def _history_entry(message: Mapping[str, Any], contact_uuid: str) -> dict[str, Any]:
    incoming = str(message.get("direction", "in")) in ("in", "incoming", "I")
    entry: dict[str, Any] = {
        "message_id": str(message.get("uuid") or uuid.uuid4()),
        "direction": "incoming" if incoming else "outgoing",
        "sender": {"type": "contact", "id": contact_uuid} if incoming else {"type": "bot"},
    }
    if message.get("text"):
        entry["text"] = message["text"]
    attachments = _attachments(message.get("attachments"))
    if attachments:
        entry["attachments"] = attachments
    entry["sent_at"] = go_time(int(message["created"].timestamp() * 1_000_000) * 1000)
    return entry


# -- control API --------------------------------------------------------------------------


def _add_ticket_controls(app: Flask, state: MailroomState) -> None:
    prefix = f"{CONTROL_PREFIX}/tickets"

    def list_tickets() -> Any:
        with state.lock:
            return jsonify(list(state.tickets.values()))

    def open_ticket() -> Any:
        spec = json_object()
        if spec is None:
            return jsonify({"errors": ["expected a JSON object"]}), 400
        answer, status = _open(state, spec)
        return jsonify(answer), status

    def ticket_action(ticket_uuid: str, action: str) -> Any:
        ticket = state.tickets.get(ticket_uuid)
        if ticket is None:
            return jsonify({"errors": [f"unknown ticket {ticket_uuid}"]}), 404
        if request.method == "GET" or action == "":
            return jsonify(ticket)
        spec = json_object() or {}
        answer, status = ACTIONS[action](state, ticket, spec)
        return jsonify(answer), status

    app.add_url_rule(prefix, "tickets", list_tickets, methods=["GET"])
    app.add_url_rule(f"{prefix}/open", "open_ticket", open_ticket, methods=["POST"])
    app.add_url_rule(
        f"{prefix}/<ticket_uuid>",
        "ticket",
        lambda ticket_uuid: ticket_action(ticket_uuid, ""),
        methods=["GET"],
    )
    for action in ACTIONS:
        app.add_url_rule(
            f"{prefix}/<ticket_uuid>/{action}",
            f"ticket_{action}",
            lambda ticket_uuid, action=action: ticket_action(ticket_uuid, action),
            methods=["POST"],
        )


def _platform_close(state: MailroomState, ticket: dict, spec: dict) -> tuple[dict, int]:
    """``CloseTickets(externally=true)`` from the platform (an agent in Weni, a flow)."""
    if ticket["status"] == "closed":
        return {
            "ok": True,
            "ticket_uuid": ticket["ticket_uuid"],
            "status": "closed",
            "calls": [],
            "note": "already closed: no request sent",
        }, 200
    try:
        result = _close_at_partner(state, ticket, echo=False)
    except OperationError as exc:
        if not spec.get("force"):
            return {
                "ok": False,
                "error": str(exc),
                "ticket_uuid": ticket["ticket_uuid"],
                "ticket_status": ticket["status"],
            }, 200
        result = None
    state.set_status(ticket, "closed", "platform")
    return {
        "ok": True,
        "ticket_uuid": ticket["ticket_uuid"],
        "ticket_status": "closed",
        **_calls(result),
    }, 200


def _platform_reopen(state: MailroomState, ticket: dict, spec: dict) -> tuple[dict, int]:
    if ticket["status"] == "open":
        return {
            "ok": True,
            "ticket_uuid": ticket["ticket_uuid"],
            "ticket_status": "open",
            "calls": [],
            "note": "already open: no request sent",
        }, 200
    try:
        result = _reopen_at_partner(state, ticket, echo=False)
    except OperationError as exc:
        return {
            "ok": False,
            "error": str(exc),
            "ticket_uuid": ticket["ticket_uuid"],
            "ticket_status": ticket["status"],
        }, 200
    state.set_status(ticket, "open", "platform")
    return {
        "ok": True,
        "ticket_uuid": ticket["ticket_uuid"],
        "ticket_status": "open",
        **_calls(result),
    }, 200


ACTIONS: dict[str, Callable[[MailroomState, dict, dict], tuple[dict, int]]] = {
    "forward": _forward,
    "close": _platform_close,
    "reopen": _platform_reopen,
    "history": _history,
}
