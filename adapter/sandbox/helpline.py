"""OpenCHS-compatible helpline simulator (the far peer of the ``openchs`` plugin).

Speaks the wire format in ``reference/openchs.md``:

- ``POST <base>`` with ``Authorization: Basic ...`` and no body → ``{"ss": [[token, ...]]}``;
  wrong credentials → 401 ``{"errors": [...]}``.
- ``POST <base>msg/`` with ``Authorization: Bearer <token>`` and
  ``{channel, timestamp, session_id, message_id, from, message, mime}`` → 201. Like real
  OpenCHS (whose ``msg/`` stores every POST, ``message_id`` only as ``src_uid``), every
  POST is stored as a new message, a repeated ``message_id`` too: a redelivery is seen
  as the counsellor would see it. Only with ``dedupe_message_ids`` (a helpline that
  could dedupe) does a repeat answer 201 with the first answer and get recorded under
  ``duplicates`` instead.
- ``POST <base>reporters|clients|cases`` (Bearer) → ``{"<resource>": {"<id>": [row]}}``,
  or the older ``{"<resource>": [[id, ...]]}`` with ``legacy_shape``.
- ``GET <base>hunting/?session_id=<id>`` (Bearer) → ``{session_id, state, position}``:
  the hunting daemon's queue (not public OpenCHS; a site's ``helpline.hunting_url``).
- ``mime``, when sent, must be a MIME type (``type/subtype``, RFC 6838's characters):
  anything else is a 400, so an adapter that sent ``image`` or a URL there is caught.
  Each stored message keeps its ``mime`` (an attachment part: its content type).

Simulated counsellors (:mod:`adapter.sandbox.hunting`) call the adapter back through
:mod:`adapter.sandbox.callbacks`; both are off unless configured, so a plain test sees
a passive helpline. The ``/_sandbox/`` control API (see :mod:`adapter.sandbox.base`)
adds ``/_sandbox/counsellor/{assign,reply,close,ack}`` and ``/_sandbox/sessions`` here.
"""

from __future__ import annotations

import hmac
import itertools
import re
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from adapter.sandbox.base import (
    CONTROL_PREFIX,
    Records,
    SandboxState,
    install_control_api,
    json_object,
    merge_config,
)
from adapter.sandbox.callbacks import CallbackSender
from adapter.sandbox.faults import Faults, Spec
from adapter.sandbox.hunting import CounsellorPool, Scheduler, UnknownSession

DEFAULT_CONFIG: dict[str, Any] = {
    # The helpline's own API.
    "base_path": "/helpline/api/",
    "username": "sandbox",
    "password": "sandbox-password",
    "token_ttl": 3600,
    # How an expired or unknown session token is refused: 401 (the PHP core's usual
    # answer), 403, or 200 with an {"errors": [...]} body, as some helpline builds do.
    "expired_token_status": 401,
    "legacy_shape": False,
    "record_requests": True,
    # Real OpenCHS stores every POST to msg/; a test may ask for a deduplicating helpline.
    "dedupe_message_ids": False,
    # Callbacks to the adapter, e.g. "http://127.0.0.1:8000/v1/sites/ke/openchs/".
    "callback_url": None,
    "callback_paths": {},  # overrides of callbacks.DEFAULT_CALLBACK_PATHS
    "callback_token": None,
    "callback_username": None,
    "callback_password": None,
    "callback_attempts": 4,
    "callback_backoff": 0.2,
    "callback_timeout": 5.0,
    "callback_minimal": False,  # today's OpenCHS: only {recipient, message_type, content}
    # Simulated counsellors.
    "hunting": False,
    "counsellors": ["Amani", "Baraka", "Chiku"],
    "max_chats": 5,
    "auto_answer": 1.0,  # probability of taking an offer, or a list of booleans (a script)
    "answer_delay": 0.05,
    "offer_timeout": 2.0,
    "reply_delay": 0.2,
    "replies": [
        "Hello, I am a counsellor. I am here to listen and you are safe to talk to me.",
        "Thank you for telling me. Can you tell me a little more about what happened?",
        "You did the right thing by reaching out. We will work this out together.",
    ],
    "close_after": None,
    "send_acks": False,
    "ack_delay": 0.05,
    "seed": None,
}

#: Row columns of the case resources (``helplinev1/rest_api/API_REFERENCE.md``).
RESOURCE_COLUMNS: dict[str, tuple[str, ...]] = {
    "reporters": (
        "contact_fname",
        "contact_lname",
        "contact_phone",
        "contact_sex_id",
        "src",
        "src_uid",
        "case_id",
    ),
    "clients": (
        "case_id",
        "contact_fname",
        "contact_lname",
        "contact_phone",
        "contact_sex_id",
        "contact_age",
        "contact_location_id",
        "is_reporter",
    ),
    "cases": (
        "reporter_id",
        "gbv_related",
        "case_category_id",
        "narrative",
        "plan",
        "priority",
        "status",
        "src",
        "src_uid",
    ),
}

#: Helpline-only fault switches, on top of :data:`adapter.sandbox.faults.COMMON_SPEC`.
HELPLINE_FAULTS: Spec = {
    "legacy_shape": ((bool,), False),
    "fail_resource": ((str, None), None),
    "fail_resource_next": ((int,), 0),
    "fail_resource_status": ((int,), 500),
    # The hunting daemon's answers only: seconds before each (the rest stays quick).
    "slow_hunting": ((int, float), 0.0),
    # Fail the msg/ posts whose message_id ends with this (e.g. "/2": a message's second
    # attachment), fail_message_id_next times, with fail_message_id_status.
    "fail_message_id": ((str, None), None),
    "fail_message_id_next": ((int,), 0),
    "fail_message_id_status": ((int,), 503),
}

RECORD_KINDS = (
    "requests",
    "tokens",
    "messages",
    "duplicates",
    *RESOURCE_COLUMNS,
    "updates",
    "callbacks",
    "offers",
)
STARTUP_ONLY = frozenset({"base_path"})  # routes are built from it once


class HelplineState(SandboxState):
    """Everything one helpline sandbox knows; guarded by ``self.lock``."""

    kind = "helpline"

    def __init__(self, config: Mapping[str, Any]) -> None:
        records = Records(RECORD_KINDS)
        msg_path = config["base_path"] + "msg"
        faults = Faults(
            helpline_error, targets=lambda path: path.rstrip("/") == msg_path, extra=HELPLINE_FAULTS
        )
        super().__init__(config, records, faults)
        self.tokens: dict[str, float] = {}  # token -> expiry (unix time); survive a reset
        self.sender = CallbackSender(lambda: self.config, records)
        self.pool = CounsellorPool(lambda: self.config, records, self.sender, Scheduler())
        self._clear_traffic()

    def _clear_traffic(self) -> None:
        self.first_answers: dict[str, dict] = {}  # message_id -> first 201 body
        self.session_counts: dict[str, int] = {}
        self.ids = itertools.count(101)

    def reset(self) -> None:
        """Records, faults, config, chats and dedupe memory; issued tokens stay valid."""
        with self.lock:
            super().reset()
            self._clear_traffic()
            self.pool.reset()
            self.sender.forget_token()

    def configure(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        fixed = STARTUP_ONLY & set(changes)
        if fixed:
            raise ValueError(f"only settable at start-up: {', '.join(sorted(fixed))}")
        return super().configure(changes)

    def apply_faults(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Also handles the one-shot ``expire_tokens`` action and ``fail_resource``."""
        changes = dict(changes)
        expire = changes.pop("expire_tokens", False)
        if not isinstance(expire, bool):
            raise ValueError("expire_tokens must be a boolean")
        resource = changes.get("fail_resource")
        if resource is not None and resource not in RESOURCE_COLUMNS:
            raise ValueError(f"fail_resource must be one of {sorted(RESOURCE_COLUMNS)}")
        if resource and "fail_resource_next" not in changes:
            changes["fail_resource_next"] = 1
        result = self.faults.update(changes)
        if expire:
            self.expire_tokens()
        return result

    def issue_token(self, username: str) -> tuple[str, float]:
        """A new session token and its expiry (unix time)."""
        token = secrets.token_hex(20)
        expires_at = time.time() + float(self.config["token_ttl"])
        with self.lock:
            self.tokens[token] = expires_at
        self.records.add("tokens", {"token": token, "username": username, "expires_at": expires_at})
        return token, expires_at

    def token_valid(self, token: str) -> bool:
        with self.lock:
            return self.tokens.get(token, 0.0) > time.time()

    def expire_tokens(self) -> None:
        with self.lock:
            self.tokens = dict.fromkeys(self.tokens, 0.0)

    def legacy_shape(self) -> bool:
        return bool(self.config["legacy_shape"] or self.faults.get("legacy_shape"))


def helpline_error(status: int, message: str) -> dict[str, Any]:
    """OpenCHS reports failures under a JSON ``errors`` key."""
    return {"errors": [message]}


def create_helpline_app(config: Mapping[str, Any] | None = None) -> Flask:
    """A helpline sandbox app; ``config`` overrides :data:`DEFAULT_CONFIG` (unknown keys fail)."""
    settings = merge_config(DEFAULT_CONFIG, config)
    base = settings["base_path"]
    if not (base.startswith("/") and base.endswith("/")):
        raise ValueError("base_path must start and end with '/'")
    state = HelplineState(settings)
    app = Flask(__name__)
    app.extensions["sandbox"] = state
    install_control_api(app, state)
    app.register_error_handler(HTTPException, _http_error)
    _api_route(app, base, "issue_token", _token_view(state))
    _api_route(app, base + "msg/", "receive_message", _message_view(state))
    for resource in RESOURCE_COLUMNS:
        _api_route(app, f"{base}{resource}/", f"create_{resource}", _resource_view(state, resource))
        _api_route(app, f"{base}{resource}/<row_id>/", f"update_{resource}",
                   _update_view(state, resource))
    app.add_url_rule(base + "hunting/", "hunting", _hunting_view(state), methods=["GET"])
    _add_counsellor_controls(app, state)
    return app


def _api_route(app: Flask, rule: str, endpoint: str, view: Callable[[], Any]) -> None:
    """POST at ``rule`` with and without its trailing slash (clients differ; no redirects)."""
    app.add_url_rule(rule, endpoint, view, methods=["POST"])
    if rule.rstrip("/"):
        app.add_url_rule(rule.rstrip("/"), endpoint + "_bare", view, methods=["POST"])


def _http_error(exc: HTTPException) -> tuple[Response, int]:
    return jsonify(helpline_error(exc.code or 500, exc.description or exc.name)), exc.code or 500


def _error(status: int, *messages: str) -> tuple[Response, int]:
    return jsonify({"errors": list(messages)}), status


def _token_view(state: HelplineState) -> Callable[[], Any]:
    def issue_token() -> Any:
        """The session-token call: Basic auth in, token at ``ss[0][0]`` out."""
        auth = request.authorization
        if auth is None or auth.type != "basic" or not _credentials_match(state, auth):
            return _error(401, "invalid credentials")
        token, expires_at = state.issue_token(auth.username or "")
        return jsonify({"ss": [[token, str(int(expires_at)), auth.username]]})

    return issue_token


def _credentials_match(state: HelplineState, auth: Any) -> bool:
    """Constant-time comparison of both fields, so neither leaks through timing."""
    user_ok = hmac.compare_digest(
        (auth.username or "").encode(), str(state.config["username"]).encode()
    )
    password_ok = hmac.compare_digest(
        (auth.password or "").encode(), str(state.config["password"]).encode()
    )
    return user_ok and password_ok


def _token_refused(state: HelplineState) -> tuple[Response, int]:
    """The answer to a call whose session token is expired or unknown (see
    ``expired_token_status``)."""
    status = int(state.config["expired_token_status"])
    if status not in (200, 401, 403):
        raise ValueError("expired_token_status must be 200, 401 or 403")
    return _error(status, "invalid or expired token")


def _bearer_ok(state: HelplineState) -> bool:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and state.token_valid(token.strip())


MESSAGE_REQUIRED = ("session_id", "message_id", "from", "message")
#: RFC 6838's restricted names, ``type/subtype``.
_MIME_NAME = r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
MIME_TYPE = re.compile(f"{_MIME_NAME}/{_MIME_NAME}")


def _message_view(state: HelplineState) -> Callable[[], Any]:
    def receive_message() -> Any:
        """A client message, stored (deduplicated by ``message_id`` only when configured
        to); may wake the counsellors."""
        if not _bearer_ok(state):
            return _token_refused(state)
        body = json_object(force=True)
        if body is None:
            return _error(400, "expected a JSON object")
        missing = [f"{name} is required" for name in MESSAGE_REQUIRED if body.get(name) is None]
        if missing:
            return _error(400, *missing)
        mime = body.get("mime")
        if mime is not None and not (isinstance(mime, str) and MIME_TYPE.fullmatch(mime)):
            return _error(400, "mime: not a MIME type (type/subtype)")
        failing = state.faults.get("fail_message_id")
        if failing and str(body["message_id"]).endswith(failing) \
                and state.faults.take("fail_message_id_next"):
            return _error(state.faults.get("fail_message_id_status"),
                          "msg failed (sandbox fault)")
        answer, is_new = _accept_message(state, body)
        if is_new:
            state.pool.client_message(
                str(body["session_id"]), str(body["from"]), str(body["message_id"])
            )
        return jsonify(answer), 201

    return receive_message


def _accept_message(state: HelplineState, body: dict) -> tuple[dict, bool]:
    """Record the message (or, when deduplicating, its duplicate) and return the answer.

    Held under the state lock so ``session_seq`` matches the recorded order.
    """
    message_id, session_id = str(body["message_id"]), str(body["session_id"])
    with state.lock:
        first = state.first_answers.get(message_id)
        if first is not None and state.config["dedupe_message_ids"]:
            state.records.add("duplicates", {**body, "received_at": time.time()})
            return first, False
        row_id = str(next(state.ids))
        session_seq = state.session_counts.get(session_id, 0) + 1
        state.session_counts[session_id] = session_seq
        answer = {
            "msg": {row_id: [row_id, body.get("channel"), message_id, session_id, body.get("from")]}
        }
        state.first_answers.setdefault(message_id, answer)
        state.records.add(
            "messages",
            {**body, "id": row_id, "session_seq": session_seq, "received_at": time.time()},
        )
        return answer, True


def _hunting_view(state: HelplineState) -> Callable[[], Any]:
    def hunting() -> Any:
        """``GET <base>hunting/?session_id=<id>`` (Bearer): the hunting daemon's view of a
        chat, ``{session_id, state, position}`` (``position`` null unless hunting); 404
        for a chat it never saw. Not public OpenCHS: what a site's ``hunting_url`` names."""
        if not _bearer_ok(state):
            return _token_refused(state)
        session_id = request.args.get("session_id")
        if not session_id:
            return _error(400, "session_id is required")
        delay = float(state.faults.get("slow_hunting") or 0)
        if delay:
            time.sleep(delay)
        answer = state.pool.queue_position(session_id)
        if answer is None:
            return _error(404, "unknown session")
        return jsonify(answer)

    return hunting


def _resource_view(state: HelplineState, resource: str) -> Callable[[], Any]:
    def create_resource() -> Any:
        """Create a reporter/client/case row; answers in the current or legacy shape."""
        if not _bearer_ok(state):
            return _token_refused(state)
        body = json_object(force=True)
        if body is None:
            return _error(400, "expected a JSON object")
        if state.faults.get("fail_resource") == resource and state.faults.take(
            "fail_resource_next"
        ):
            status = state.faults.get("fail_resource_status")
            return _error(status, f"{resource} create failed (sandbox fault)")
        with state.lock:
            row_id = str(next(state.ids))
        row = [
            row_id,
            str(int(time.time())),
            *(body.get(col) for col in RESOURCE_COLUMNS[resource]),
        ]
        state.records.add(resource, {"id": row_id, "body": body})
        shaped = [row] if state.legacy_shape() else {row_id: row}
        return jsonify({resource: shaped}), 201

    return create_resource


def _update_view(state: HelplineState, resource: str) -> Callable[..., Any]:
    def update_resource(row_id: str) -> Any:
        """``POST <resource>/<id>``: update a row's columns (an update replaces them, so a
        repeat changes nothing); 404 for an id never created, 400 for unknown columns."""
        if not _bearer_ok(state):
            return _token_refused(state)
        body = json_object(force=True)
        if body is None:
            return _error(400, "expected a JSON object")
        unknown = sorted(set(body) - set(RESOURCE_COLUMNS[resource]))
        if unknown:
            return _error(400, f"unknown {resource} columns: {', '.join(unknown)}")
        rows = state.records.list(resource, {"id": row_id})
        if not rows:
            return _error(404, f"no {resource} row {row_id}")
        state.records.amend(resource, rows[-1]["seq"], body={**rows[-1]["body"], **body})
        state.records.add("updates", {"resource": resource, "id": row_id, "body": body})
        row = [row_id, str(int(time.time())),
               *({**rows[-1]["body"], **body}.get(col) for col in RESOURCE_COLUMNS[resource])]
        return jsonify({resource: {row_id: row}}), 200

    return update_resource


def _add_counsellor_controls(app: Flask, state: HelplineState) -> None:
    """``/_sandbox/counsellor/<action>``: make a counsellor act now, answer the outcome."""
    pool = state.pool

    def control(action: str) -> Any:
        if action not in CONTROL_REQUIRED:
            return _error(404, f"unknown action; use one of {sorted(CONTROL_REQUIRED)}")
        body = json_object() or {}
        missing = [f"{name} is required" for name in CONTROL_REQUIRED[action] if not body.get(name)]
        if missing:
            return _error(400, *missing)
        try:
            return jsonify(_run_control(pool, action, str(body["session_id"]), body))
        except UnknownSession:
            return _error(404, "unknown session; give 'recipient'")

    app.add_url_rule(
        f"{CONTROL_PREFIX}/counsellor/<action>", "counsellor_control", control, methods=["POST"]
    )
    app.add_url_rule(
        f"{CONTROL_PREFIX}/sessions", "sessions", lambda: jsonify(pool.sessions()), methods=["GET"]
    )


#: Counsellor control action -> required body fields.
CONTROL_REQUIRED: dict[str, tuple[str, ...]] = {
    "assign": ("session_id",),
    "reply": ("session_id", "text"),
    "close": ("session_id",),
    "ack": ("session_id", "message_id"),
}


def _run_control(pool: CounsellorPool, action: str, session_id: str, body: dict) -> dict:
    if action == "assign":
        return pool.assign(session_id, body.get("counsellor"))
    if action == "reply":
        return pool.reply(
            session_id,
            str(body["text"]),
            counsellor=body.get("counsellor"),
            recipient=body.get("recipient"),
            message_id=body.get("message_id"),
            minimal=body.get("minimal"),
            message_type=str(body.get("message_type") or "text"),
        )
    if action == "close":
        return pool.close(session_id)
    return pool.ack(session_id, str(body["message_id"]), body.get("status", "delivered"))
