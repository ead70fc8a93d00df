"""RapidPro's webhook bodies (default, resthook/legacy, explicit) → protocol requests.

Explicit fields are validated by the schemas; values read out of ``results`` (any JSON
a flow put there) are checked here, once read, against the column each one is stored
in: a 400 naming where the value came from (``results.risk.value``), never a value the
database refuses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ...api.fields import split_attachments_at
from ...config import DefaultConfig
from ...errors import ApiError
from ...idempotency import key_as_id
from ...protocol import ClientMessage, StartRequest

#: The longest value each request field may hold: its column in adapter.models.
MAX_LENGTH = {
    "conversation_id": 200,  # conversations.external_id
    "message_id": 200,  # messages.sender_message_id
    "risk": 64,  # conversations.risk
    "location": 120,  # conversations.location
    "text": 10_000,  # messages.text (unbounded; the schemas' limit)
    "contact_uuid": 64,  # conversations.contact_uuid
    "urn": 255,  # conversations.contact_urn
    "flow_uuid": 64,  # conversations.flow_uuid
    "run_uuid": 64,  # conversations.run_uuid
}

#: A value and where in the body it came from (``results.risk.value``, ``contact.urn``).
Sourced = tuple[Any, str | None]


def _keys(keys: Mapping[str, Sequence[str]], name: str) -> Sequence[str]:
    """The configured keys for ``name``; a setting that names only some falls back to ours."""
    return keys[name] if name in keys else DefaultConfig.RESULT_KEYS[name]


def result_item(results: Mapping[str, Any] | None, keys: Sequence[str]) -> Sourced:
    """The first non-empty ``results[key].value`` (or a plain value) among ``keys``, as
    text, and its path in the body; ``(None, None)`` if there is none."""
    for key in keys:
        item = (results or {}).get(key)
        if isinstance(item, Mapping):
            value, where = item.get("value"), f"results.{key}.value"
        else:
            value, where = item, f"results.{key}"
        if value not in (None, ""):
            return str(value), where
    return None, None


def result_value(results: Mapping[str, Any] | None, keys: Sequence[str]) -> str | None:
    """The first non-empty ``results[key].value`` (or a plain value) among ``keys``."""
    return result_item(results, keys)[0]


def _first(*candidates: Sourced) -> Sourced:
    """The first candidate with a value (as ``a or b or c`` would pick it), and its source."""
    for value, where in candidates:
        if value:
            return value, where
    return None, None


def check_lengths(values: Mapping[str, Sourced]) -> None:
    """400 naming each value longer than its column, by where it came from."""
    errors = {}
    for name, (value, where) in values.items():
        limit = MAX_LENGTH[name]
        if isinstance(value, str) and len(value) > limit:
            errors[where or name] = [f"at most {limit} characters"]
    if errors:
        raise ApiError(400, "invalid_request", "invalid fields: " + ", ".join(sorted(errors)),
                       errors)


def _attachments(body: Mapping[str, Any]) -> tuple[list[str], list[str], list[str]]:
    """Attachments as stored (RapidPro's ``content-type:url`` kept, or a bare URL), the
    field each came from (``input.attachments.1``), and shared locations (``geo:lat,long``)
    as lines of text: a location is no link."""
    if body.get("attachments"):
        raw, where = body["attachments"], "attachments"
    else:
        raw, where = (body.get("input") or {}).get("attachments") or [], "input.attachments"
    return split_attachments_at((str(item) for item in raw), where)


def _with_locations(text: str | None, locations: list[str]) -> str | None:
    return "\n".join([text, *locations] if text else locations) if locations else text


def _key_id(idempotency_key: str | None) -> Sourced:
    return (key_as_id(idempotency_key) if idempotency_key else None), "Idempotency-Key"


def start_request(body: Mapping[str, Any], keys: Mapping[str, Sequence[str]],
                  idempotency_key: str | None, *, check: bool = True) -> StartRequest:
    """The start a body asks for, read with ``keys``. ``check=False`` for a read that only
    routes (nothing of it is stored); the read that is stored is checked."""
    contact = body.get("contact") or {}
    results = body.get("results") or {}
    run = body.get("run") or {}
    inp = body.get("input") or {}
    values = {
        "conversation_id": _first(
            (body.get("conversation_id"), "conversation_id"),
            result_item(results, _keys(keys, "conversation_id")),
            (run.get("uuid"), "run.uuid"),
            _key_id(idempotency_key)),
        "location": _first((body.get("location"), "location"),
                           result_item(results, _keys(keys, "location"))),
        "risk": _first((body.get("risk"), "risk"), result_item(results, _keys(keys, "risk"))),
        "contact_uuid": (contact.get("uuid"), "contact.uuid"),
        "urn": _first((contact.get("urn"), "contact.urn"), (inp.get("urn"), "input.urn")),
        "text": _first((body.get("text"), "text"), result_item(results, _keys(keys, "text")),
                       (inp.get("text"), "input.text")),
        "message_id": _first((body.get("message_id"), "message_id"),
                             result_item(results, _keys(keys, "message_id")),
                             (inp.get("uuid"), "input.uuid")),
        "flow_uuid": ((body.get("flow") or {}).get("uuid"), "flow.uuid"),
        "run_uuid": (run.get("uuid"), "run.uuid"),
    }
    if check:
        check_lengths(values)
    urls, paths, locations = _attachments(body)
    return StartRequest(
        conversation_id=values["conversation_id"][0],
        site=body.get("site"),
        location=values["location"][0],
        risk=values["risk"][0],
        contact_uuid=values["contact_uuid"][0],
        urn=values["urn"][0],
        text=_with_locations(values["text"][0], locations),
        message_id=values["message_id"][0],
        attachments=urls,
        attachment_paths=paths,
        flow_uuid=values["flow_uuid"][0],
        run_uuid=values["run_uuid"][0],
        language=body.get("language") or contact.get("language") or None,
    )


def client_message(body: Mapping[str, Any], keys: Mapping[str, Sequence[str]],
                   idempotency_key: str | None, *, check: bool = True) -> ClientMessage:
    """A client message, read with ``keys``; ``check=False`` for a read that only looks up."""
    results = body.get("results") or {}
    inp = body.get("input") or {}
    values = {
        "message_id": _first((body.get("message_id"), "message_id"),
                             result_item(results, _keys(keys, "message_id")),
                             (inp.get("uuid"), "input.uuid"),
                             _key_id(idempotency_key)),
        "text": _first((body.get("text"), "text"), result_item(results, _keys(keys, "text")),
                       (inp.get("text"), "input.text")),
    }
    if check:
        check_lengths(values)
    urls, paths, locations = _attachments(body)
    return ClientMessage(
        message_id=values["message_id"][0],
        text=_with_locations(values["text"][0], locations),
        attachments=urls,
        attachment_paths=paths,
    )
