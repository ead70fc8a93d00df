"""RapidPro API v2 simulator: the subset the adapter calls back (``reference/rapidpro.md``).

- ``POST /api/v2/flow_starts.json`` and ``POST /api/v2/broadcasts.json`` (also without
  ``.json``), validated like RapidPro's serializers: 400 with field errors, else 201
  with a RapidPro-shaped body. ``GET`` on both lists what this org created.
- ``GET /api/v2/flows.json`` (``?uuid=`` filters): the configured flows, as RapidPro
  lists them; a flow start naming a flow not configured is refused like RapidPro does.
  A broadcast's ``attachments`` (a list, or language → list; at most 10) must name media
  uploaded to the workspace (``media``): any other URL is refused, as RapidPro's
  ``MediaField`` refuses it.
- ``Authorization: Token <token>``; each configured token belongs to an org
  (``tokens: {token: org}``); missing or unknown → 401 ``{"detail": ...}``.
- Per-org token bucket of ``rate_per_hour`` (default 3600, like RapidPro) → 429 with
  ``Retry-After`` and Django REST framework's throttle text, plus the common fault
  switches (``throttle_next`` forces 429s without waiting for the bucket to drain).

Accepted calls are recorded as kinds ``flow_starts`` and ``broadcasts`` with org,
endpoint, body and headers; every request as ``requests``.
"""

from __future__ import annotations

import hmac
import json
import math
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from adapter.sandbox.base import (
    Records,
    SandboxState,
    install_control_api,
    is_control_path,
    json_object,
    merge_config,
)
from adapter.sandbox.faults import Faults, throttle_message

API_PREFIX = "/api/v2/"
MAX_RECIPIENTS = 100
MAX_PARAMS_CHARS = 10_000
MAX_TEXT_CHARS = 4096

DEFAULT_CONFIG: dict[str, Any] = {
    "tokens": {"sandbox-token": "sandbox-org"},  # API token -> org name
    "rate_per_hour": 3600,
    "org_rates": {},  # org -> rate_per_hour, for orgs with their own limit
    "burst": None,  # bucket size; None = rate_per_hour (RapidPro counts per hour)
    # flow uuid -> name: the workspace's flows. As in RapidPro, a flow start naming any
    # other flow is refused ("No such object"); none configured, none exist.
    "flows": {},
    # Media uploaded to the workspace (uuids). As in RapidPro (its API's MediaField), a
    # broadcast's `attachments` may only name these: by uuid, or as a
    # `<content-type>:<url>` whose URL holds one. Any other URL is "No such object".
    "media": [],
    "record_requests": True,
}

RECORD_KINDS = ("requests", "flow_starts", "broadcasts")


class TokenBuckets:
    """One token bucket per org: ``rate_per_hour`` tokens an hour, up to ``burst``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # org -> (tokens, last refill)

    def take(self, org: str, rate_per_hour: float, burst: float) -> float:
        """Take one token: 0.0 if allowed, else seconds until one is available."""
        rate = rate_per_hour / 3600.0
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(org, (burst, now))
            tokens = min(burst, tokens + (now - last) * rate)
            if tokens >= 1.0:
                self._buckets[org] = (tokens - 1.0, now)
                return 0.0
            self._buckets[org] = (tokens, now)
            return (1.0 - tokens) / rate if rate > 0 else 3600.0

    def clear(self) -> None:
        with self._lock:
            self._buckets.clear()


class RapidProState(SandboxState):
    """Records, faults, config and rate limits of one RapidPro sandbox."""

    kind = "rapidpro"

    def __init__(self, config: Mapping[str, Any]) -> None:
        faults = Faults(rapidpro_error, targets=lambda path: path.startswith(API_PREFIX))
        super().__init__(config, Records(RECORD_KINDS), faults)
        self.buckets = TokenBuckets()

    def reset(self) -> None:
        with self.lock:
            super().reset()
            self.buckets.clear()

    def org_for(self, token: str) -> str | None:
        """The org owning ``token`` (constant-time comparison against each)."""
        found = None
        for known, org in self.config["tokens"].items():
            if hmac.compare_digest(known.encode(), token.encode()):
                found = org
        return found

    def wait_before_next(self, org: str) -> float:
        """Seconds this org must wait (0.0 when the request may proceed)."""
        config = self.config
        rate = float(config["org_rates"].get(org, config["rate_per_hour"]))
        return self.buckets.take(org, rate, float(config["burst"] or rate))


def rapidpro_error(status: int, message: str) -> dict[str, Any]:
    """Django REST framework puts a non-field error under ``detail``."""
    return {"detail": message}


def create_rapidpro_app(config: Mapping[str, Any] | None = None) -> Flask:
    """A RapidPro sandbox app; ``config`` overrides :data:`DEFAULT_CONFIG` (unknown keys fail)."""
    state = RapidProState(merge_config(DEFAULT_CONFIG, config))
    app = Flask(__name__)
    app.extensions["sandbox"] = state
    install_control_api(app, state)
    app.before_request(_authenticate_and_throttle(state))
    app.register_error_handler(HTTPException, _http_error)
    for name, validate in (
        ("flow_starts", validate_flow_start),
        ("broadcasts", validate_broadcast),
    ):
        view = _endpoint_view(state, name, validate)
        for rule in (f"{API_PREFIX}{name}.json", f"{API_PREFIX}{name}"):
            app.add_url_rule(rule, f"{name}:{rule}", view, methods=["GET", "POST"])
    flows = _flows_view(state)
    for rule in (f"{API_PREFIX}flows.json", f"{API_PREFIX}flows"):
        app.add_url_rule(rule, f"flows:{rule}", flows, methods=["GET"])
    return app


def _flows_view(state: RapidProState) -> Callable[[], Any]:
    def flows() -> Any:
        """The workspace's flows (``?uuid=`` one), in RapidPro's list shape."""
        wanted = request.args.get("uuid")
        known = state.config["flows"]
        found = [{"uuid": flow, "name": name, "type": "message", "archived": False,
                  "labels": [], "expires": 10080, "runs": {}, "results": [],
                  "parent_refs": [], "created_on": _now(), "modified_on": _now()}
                 for flow, name in known.items() if wanted in (None, flow)]
        return jsonify({"next": None, "previous": None, "results": found})

    return flows


def _http_error(exc: HTTPException) -> tuple[Response, int]:
    return jsonify(rapidpro_error(exc.code or 500, exc.description or exc.name)), exc.code or 500


def _authenticate_and_throttle(state: RapidProState) -> Callable[[], Any]:
    def check() -> Any:
        """Token auth, then the org's rate limit — in that order, as in RapidPro."""
        if is_control_path(request.path) or not request.path.startswith(API_PREFIX):
            return None
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Token" or not token.strip():
            return jsonify(
                rapidpro_error(401, "Authentication credentials were not provided.")
            ), 401
        org = state.org_for(token.strip())
        if org is None:
            return jsonify(rapidpro_error(401, "Invalid token.")), 401
        wait = state.wait_before_next(org)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            response = jsonify(rapidpro_error(429, throttle_message(seconds)))
            response.headers["Retry-After"] = str(seconds)
            return response, 429
        g.org = org
        return None

    return check


Validator = Callable[[dict, Mapping[str, Any]], tuple[dict[str, list[str]], dict]]


def _endpoint_view(state: RapidProState, name: str, validate: Validator) -> Callable[[], Any]:
    def endpoint() -> Any:
        """List (GET) or create (POST) flow starts / broadcasts for the caller's org."""
        if request.method == "GET":
            mine = [item["response"] for item in state.records.list(name, {"org": g.org})]
            return jsonify({"next": None, "previous": None, "results": mine[::-1]})
        if not request.is_json:
            message = f'Unsupported media type "{request.mimetype}" in request.'
            return jsonify(rapidpro_error(415, message)), 415
        body = json_object()
        if body is None:
            return jsonify(rapidpro_error(400, "JSON parse error - expected an object")), 400
        errors, created = validate(body, state.config)
        if errors:
            return jsonify(errors), 400
        state.records.add(
            name,
            {
                "org": g.org,
                "endpoint": request.path,
                "body": body,
                "headers": dict(request.headers),
                "response": created,
            },
        )
        return jsonify(created), 201

    return endpoint


# -- validation, after RapidPro's FlowStartWriteSerializer / BroadcastWriteSerializer ------


def validate_flow_start(body: dict, config: Mapping[str, Any]) -> tuple[dict[str, list[str]], dict]:
    """Field errors (empty when valid) and the flow start RapidPro would answer."""
    errors: dict[str, list[str]] = {}
    flow = body.get("flow")
    flows = config["flows"]
    if flow in (None, ""):
        errors["flow"] = ["This field is required."]
    elif not _is_uuid(flow) or flow not in flows:
        errors["flow"] = [f"No such object: {flow}"]
    recipients = _validate_recipients(body, errors)
    for flag in ("restart_participants", "exclude_active"):
        if flag in body and not isinstance(body[flag], bool):
            errors[flag] = ["Must be a valid boolean."]
    params_key = "params" if "params" in body else "extra"
    params = body.get(params_key) or {}
    if not isinstance(params, dict):
        errors[params_key] = ["Must be a valid JSON object"]
    elif len(json.dumps(params)) > MAX_PARAMS_CHARS:
        errors[params_key] = [f"Ensure this field has no more than {MAX_PARAMS_CHARS} characters."]
    if not errors and not any(recipients.values()):
        errors["non_field_errors"] = ["Must specify at least one group, contact or URN"]
    if errors:
        return errors, {}
    now = _now()
    return {}, {
        "uuid": str(uuid.uuid4()),
        "flow": {"uuid": flow, "name": flows[flow] or f"Sandbox flow {flow[:8]}"},
        "status": "pending",
        "groups": [{"uuid": None, "name": name} for name in recipients["groups"]],
        "contacts": [{"uuid": contact, "name": None} for contact in recipients["contacts"]],
        "urns": recipients["urns"],
        "restart_participants": body.get("restart_participants", True),
        "exclude_active": body.get("exclude_active", False),
        "params": params,
        "extra": params,
        "created_on": now,
        "modified_on": now,
    }


def validate_broadcast(body: dict, config: Mapping[str, Any]) -> tuple[dict[str, list[str]], dict]:
    """Field errors (empty when valid) and the broadcast RapidPro would answer."""
    errors: dict[str, list[str]] = {}
    recipients = _validate_recipients(body, errors)
    text = body.get("text")
    base_language = body.get("base_language") or "eng"
    if isinstance(text, str):
        translations = {base_language: text} if text else {}
    elif isinstance(text, dict) and all(isinstance(v, str) for v in text.values()):
        translations = text
        base_language = body.get("base_language") or next(iter(text), "eng")
    else:
        translations = {}
        if text is not None:
            errors["text"] = ["Must be a string or a dict of language to string."]
    if any(len(value) > MAX_TEXT_CHARS for value in translations.values()):
        errors["text"] = [f"Ensure this field has no more than {MAX_TEXT_CHARS} characters."]
    if body.get("attachments") is not None:
        problem = _attachments_problem(body["attachments"], config)
        if problem:
            errors["attachments"] = [problem]
    if not errors and not translations and not body.get("attachments"):
        errors["non_field_errors"] = ["Must provide either text or attachments."]
    if not errors and not any(recipients.values()):
        errors["non_field_errors"] = ["Must provide either urns, contacts or groups."]
    if errors:
        return errors, {}
    return {}, {
        "uuid": str(uuid.uuid4()),
        "urns": recipients["urns"],
        "contacts": [{"uuid": contact, "name": None} for contact in recipients["contacts"]],
        "groups": [{"uuid": None, "name": name} for name in recipients["groups"]],
        "text": translations,
        "attachments": body.get("attachments") or [],
        "base_language": base_language,
        "status": "pending",
        "created_on": _now(),
    }


MAX_ATTACHMENTS = 10


def _attachments_problem(value: Any, config: Mapping[str, Any]) -> str | None:
    """RapidPro's TranslatedAttachmentsField: a list (or language → list) of at most 10
    media, each a media uuid or an attachment string whose URL contains one."""
    lists = list(value.values()) if isinstance(value, dict) else [value]
    for items in lists:
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            return "Expected a list of items."
        if len(items) > MAX_ATTACHMENTS:
            return f"Ensure this field has no more than {MAX_ATTACHMENTS} elements."
        known = {str(m).lower() for m in config["media"]}
        for item in items:
            if not any(media in item.lower() for media in known):
                return f"No such object: {item}"
    return None


def _validate_recipients(body: dict, errors: dict[str, list[str]]) -> dict[str, list[str]]:
    """Check ``contacts`` (uuids), ``urns`` (scheme:path) and ``groups``; ≤100 each."""
    found: dict[str, list[str]] = {}
    for field in ("contacts", "urns", "groups"):
        values = body.get(field) or []
        found[field] = []
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            errors[field] = ["Expected a list of items."]
        elif len(values) > MAX_RECIPIENTS:
            errors[field] = [f"Ensure this field has no more than {MAX_RECIPIENTS} elements."]
        else:
            found[field] = values
    bad_contacts = [c for c in found["contacts"] if not _is_uuid(c)]
    if bad_contacts:
        errors["contacts"] = [f"No such object: {bad_contacts[0]}"]
    bad_urns = [u for u in found["urns"] if not _is_urn(u)]
    if bad_urns:
        errors["urns"] = [
            f"Invalid URN: {bad_urns[0]}. Ensure phone numbers contain country codes."
        ]
    return found


def _is_uuid(value: Any) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return isinstance(value, str)


def _is_urn(value: str) -> bool:
    scheme, sep, path = value.partition(":")
    return bool(sep and scheme.isalnum() and scheme.islower() and path)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
