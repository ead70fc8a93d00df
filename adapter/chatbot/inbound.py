"""RapidPro's webhook bodies (default, resthook/legacy, explicit) → protocol requests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..config import DefaultConfig
from ..protocol import ClientMessage, StartRequest


def _keys(keys: Mapping[str, Sequence[str]], name: str) -> Sequence[str]:
    """The configured keys for ``name``; a setting that names only some falls back to ours."""
    return keys[name] if name in keys else DefaultConfig.RESULT_KEYS[name]


def result_value(results: Mapping[str, Any] | None, keys: Sequence[str]) -> str | None:
    """The first non-empty ``results[key].value`` (or a plain value) among ``keys``."""
    for key in keys:
        item = (results or {}).get(key)
        value = item.get("value") if isinstance(item, Mapping) else item
        if value not in (None, ""):
            return str(value)
    return None


def _attachments(body: Mapping[str, Any]) -> list[str]:
    """Attachment URLs; RapidPro writes them as ``content-type:url``."""
    raw = body.get("attachments") or (body.get("input") or {}).get("attachments") or []
    urls = []
    for item in raw:
        text = str(item)
        _, sep, rest = text.partition(":")
        urls.append(rest if sep and rest.startswith("http") else text)
    return urls


def start_request(body: Mapping[str, Any], keys: Mapping[str, Sequence[str]],
                  idempotency_key: str | None) -> StartRequest:
    contact = body.get("contact") or {}
    results = body.get("results") or {}
    run = body.get("run") or {}
    inp = body.get("input") or {}
    conversation_id = (
        body.get("conversation_id")
        or result_value(results, _keys(keys, "conversation_id"))
        or run.get("uuid")
        or idempotency_key
    )
    return StartRequest(
        conversation_id=conversation_id,
        site=body.get("site"),
        location=body.get("location") or result_value(results, _keys(keys, "location")),
        risk=body.get("risk") or result_value(results, _keys(keys, "risk")),
        contact_uuid=contact.get("uuid"),
        urn=contact.get("urn") or inp.get("urn"),
        text=body.get("text") or result_value(results, _keys(keys, "text")) or inp.get("text"),
        message_id=body.get("message_id") or result_value(results, _keys(keys, "message_id"))
        or inp.get("uuid"),
        attachments=_attachments(body),
        flow_uuid=(body.get("flow") or {}).get("uuid"),
        run_uuid=run.get("uuid"),
    )


def client_message(body: Mapping[str, Any], keys: Mapping[str, Sequence[str]],
                   idempotency_key: str | None) -> ClientMessage:
    results = body.get("results") or {}
    inp = body.get("input") or {}
    return ClientMessage(
        message_id=body.get("message_id") or result_value(results, _keys(keys, "message_id"))
        or inp.get("uuid") or idempotency_key,
        text=body.get("text") or result_value(results, _keys(keys, "text")) or inp.get("text"),
        attachments=_attachments(body),
    )
