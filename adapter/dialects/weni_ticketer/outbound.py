"""Calls back into Weni mailroom: the counsellor's side of a ticket, signed.

Under the ticket's ``webhook_base_url`` (kept with the conversation): ``/messages`` for a
counsellor's message (and the system's notices: a counsellor joined, nobody is free),
``/tickets/close`` when the helpline ends the conversation. Each body is signed
``X-Webhook-Signature: sha256=<hex HMAC-SHA256(secret, raw body)>`` with the site's
``[chatbot.weni] webhook_secret``, and carries ``X-Webhook-Timestamp`` (RFC 3339 UTC).

Mailroom does not deduplicate ``message_external_id``: a callback that landed and is
sent again reaches the child twice. So an answer is final (the engine commits each
outcome as soon as its answer arrives), and only a call whose fate we cannot know — no
answer, a timeout, a 5xx — is tried again.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from flask import Flask

from plugins.http import retry_after_seconds, transport_errors_retryable
from plugins.types import DeliveryFailure, SendResult

from ...api.fields import attachment_url, content_type_of
from ...delivery.helpline_calls import SITE_PROBLEM_RETRY_SECONDS
from ...hours import after_hours_text
from ...models import Conversation, Delivery, Message
from ...sites import Site
from .schemas import CLOSE_REASONS
from .wire import rfc3339

log = logging.getLogger(__name__)

ADAPTER = "helpline-adapter"
#: Events told to the child as a message from the system, in their language ([texts];
#: the [chatbot.weni] key named here is the default language's text when [texts] has none).
SYSTEM_TEXTS = {"assigned": "assigned_text", "no_counsellor": "no_counsellor_text",
                "still_waiting": "still_waiting_text", "after_hours": "after_hours_text"}


def plan_events(site: Site, event: str, params: dict,
                language: str | None = None) -> list[tuple[str, dict]]:
    """The callbacks a protocol event makes for a ticket. What mailroom cannot show is
    not sent: delivery acknowledgements (it has none) and case events; nor a system
    message the site has no text for in the child's ``language`` or its default."""
    if event in ("message", "closed", "reopened"):
        return [(event, params)]
    told = [(event, params)] if site.texts.text_for(event, language)[0] else []
    if event in ("assigned", "still_waiting"):
        return told
    if event == "no_counsellor":
        plan = told if site.weni is not None else [(event, params)]
        if params.get("closed"):  # the site closes on no_counsellor: so does the ticket
            plan.append(("closed", {**params, "closed_by": "timeout", "reason": "expired"}))
        return plan
    if event == "after_hours":
        plan = [(event, params)] if after_hours_text(site.texts, params, language)[0] else []
        if not params.get("held"):  # closed after hours: so is the ticket
            plan.append(("closed", {**params, "closed_by": "after_hours", "reason": "other"}))
        return plan
    return []


def sign(secret: str, raw: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _attachment(stored: str) -> dict:
    """The contract's ``{url, content_type}``: the type only when it is a full one."""
    content_type = content_type_of(stored)
    out = {"url": attachment_url(stored)}
    if content_type and "/" in content_type:
        out["content_type"] = content_type
    return out


def build_callback(site: Site, delivery: Delivery, conversation: Conversation,
                   message: Message | None) -> tuple[str, dict]:
    """The route under the callback base and the JSON body for one delivery."""
    params = dict(delivery.params or {})
    event = params.get("event", "message")
    metadata = {"conversation_id": conversation.id, "site": site.code}
    if event == "message":
        if message is None:
            raise DeliveryFailure("message not found", retryable=False)
        if message.text is None and not message.attachments:
            raise DeliveryFailure("message text is gone (purged)", retryable=False)
        body = {"external_id": conversation.id, "message_external_id": message.id,
                "direction": "outgoing",
                "sender": {"type": "agent", "id": message.sender or "counsellor",
                           "name": message.sender or "counsellor"}}
        if message.text:
            body["text"] = message.text
        if message.attachments:
            body["attachments"] = [_attachment(item) for item in message.attachments]
        body["metadata"] = {**metadata, "message_id": message.id}
        body["sent_at"] = rfc3339(message.created_at)
        return "/messages", body
    if event in SYSTEM_TEXTS:
        # In the child's language, else the site's default (docs/conversation.md).
        if event == "after_hours":
            text = after_hours_text(site.texts, params, conversation.language)[0]
        else:
            text = site.texts.text_for(event, conversation.language)[0]
        if not text:
            raise DeliveryFailure(f"no text configured for {event}", retryable=False)
        return "/messages", {
            "external_id": conversation.id, "message_external_id": f"{event}-{delivery.id}",
            "direction": "outgoing", "sender": {"type": "system", "id": ADAPTER},
            "text": text, "metadata": {**metadata, "event": event}, "sent_at": _now()}
    if event == "closed":
        by = params.get("closed_by") or conversation.closed_by
        reason = params.get("reason") or conversation.close_reason or "resolved"
        actor = {"type": "agent", "id": conversation.counsellor or "counsellor"} \
            if by == "counsellor" else {"type": "system", "id": ADAPTER}
        return "/tickets/close", {
            "external_id": conversation.id, "closed_by": actor,
            "reason": reason if reason in CLOSE_REASONS else "other",
            "metadata": {**metadata, "closed_by": by},
            "closed_at": rfc3339(conversation.closed_at) or _now()}
    if event == "reopened":
        return "/tickets/reopen", {
            "external_id": conversation.id, "reopened_by": {"type": "system", "id": ADAPTER},
            "metadata": metadata, "reopened_at": _now()}
    raise DeliveryFailure(f"event {event!r} has no ticketer callback", retryable=False)


def prepare_callback(app: Flask, site: Site, delivery: Delivery,
                     conversation: Conversation | None, message: Message | None,
                     http) -> Callable[[], SendResult]:
    """Read and sign now; the returned call only talks HTTP (a worker thread)."""
    if conversation is None:
        raise DeliveryFailure("conversation not found", retryable=False)
    base = conversation.chatbot_callback_url
    if not base:
        raise DeliveryFailure("the ticket's open gave no metadata.webhook_base_url",
                              retryable=False)
    weni = site.weni
    if weni is None or not weni.webhook_secret:
        raise DeliveryFailure("the site has no [chatbot.weni] webhook_secret (a site problem)",
                              retryable=True, retry_after=SITE_PROBLEM_RETRY_SECONDS)
    route, body = build_callback(site, delivery, conversation, message)
    raw = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    url = base.rstrip("/") + route
    headers = {
        "Content-Type": "application/json",
        "X-Webhook-Signature": sign(weni.webhook_secret, raw),
        "Idempotency-Key": f"delivery-{delivery.id}",
        "X-Request-Id": f"delivery-{delivery.id}-{delivery.attempts}",
    }
    what = f"weni {route}"

    @transport_errors_retryable
    def call() -> SendResult:
        response = http.post(url, data=raw, headers={**headers, "X-Webhook-Timestamp": _now()})
        return judge(response, what, site)

    return call


def _error_code(response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    return str(body.get("error") or "") if isinstance(body, dict) else ""


def judge(response, what: str, site: Site) -> SendResult:
    """Mailroom's answer → the outcome. Only what may not have landed is retried."""
    status = response.status_code
    if 200 <= status < 300:
        try:
            reference = response.json().get("message_uuid")
        except (ValueError, AttributeError):
            reference = None
        return SendResult(status_code=status, reference=reference)
    code = _error_code(response)
    if status == 401 or (status == 404 and code != "ticket_not_found") or status == 500 \
            and code == "misconfigured":
        # A wrong secret, clock or callback base: not the message. Kept, tried again
        # after a while; an operator fixes the site.
        log.warning("weni.site_problem", extra={"site": site.code, "status_code": status,
                                                "reason": code or None})
        raise DeliveryFailure(f"{what}: HTTP {status} {code} (a site problem: check "
                              "[chatbot.weni] webhook_secret and the callback base)",
                              retryable=True, status_code=status,
                              retry_after=SITE_PROBLEM_RETRY_SECONDS)
    if status >= 500 or status == 429:
        raise DeliveryFailure(f"{what}: HTTP {status} {code}".rstrip(), retryable=True,
                              status_code=status,
                              retry_after=retry_after_seconds(response.headers.get("Retry-After")))
    raise DeliveryFailure(f"{what}: HTTP {status} {code}".rstrip(), retryable=False,
                          status_code=status)
