"""The webhook helpline's JSON: events we send, events it calls back with.

Both directions use the Standard Webhooks envelope ``{"type", "timestamp", "data"}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from plugins.types import (
    Acknowledgement,
    Assignment,
    ConversationRef,
    CounsellorMessage,
    HelplineClose,
    HelplineEvent,
)

#: Callback event types, as the helpline sends them.
CALLBACK_TYPES = (
    "message.created",
    "conversation.assigned",
    "message.acknowledged",
    "conversation.closed",
)


def _iso(when: datetime | None) -> str:
    when = when or datetime.now(UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.isoformat().replace("+00:00", "Z")


def envelope(event_type: str, data: Mapping[str, Any], when: datetime | None = None) -> dict:
    return {"type": event_type, "timestamp": _iso(when), "data": dict(data)}


def opened(site_code: str, conversation: Any) -> dict:
    return envelope("conversation.opened", {
        "session_id": conversation.id,
        "client": conversation.client,
        "site": site_code,
        "risk": conversation.risk,
        "location": conversation.location,
        "returning": conversation.returning,
        "reopen_count": conversation.reopen_count,
        "previous_session_id": conversation.previous_session_id,
    }, conversation.created_at)


def case_transcript(case: Any, reference: str, transcript: Any) -> dict:
    """A closed conversation's transcript for the helpline's case ``reference``."""
    return envelope("case.transcript", {
        "case_id": case.id,
        "reference": reference,
        "session_id": transcript.session_id,
        "transcript_id": transcript.id,
        "messages": [{"at": _iso(line.at), "role": line.role, "from": line.sender,
                      "text": line.text or "", "attachments": list(line.attachments)}
                     for line in transcript.lines],
    }, transcript.closed_at)


def message(conversation: Any, msg: Any) -> dict:
    return envelope("message.created", {
        "session_id": conversation.id,
        "message_id": msg.id,
        "from": conversation.client,
        "text": msg.text or "",
        "attachments": list(msg.attachments or ()),
        # The same, with each one's content type (null when unknown).
        "media": [{"url": item.url, "content_type": item.content_type}
                  for item in (msg.media or ())],
    }, msg.created_at)


def case_opened(site_code: str, case: Any) -> dict:
    """A whole case in one event: the helpline creates it and answers its ``reference``.

    The client is named by pseudonym only; the intake is what the child chose to share.
    """
    return envelope("case.created", {
        "case_id": case.id,
        "session_id": case.conversation_id,
        "client": case.client,
        "site": site_code,
        "intake": dict(case.intake or {}),
    }, case.created_at)


def closed(conversation: Any, closed_by: str | None) -> dict:
    return envelope("conversation.closed", {
        "session_id": conversation.id,
        "closed_by": closed_by or "client",
    }, conversation.closed_at)


def acknowledged(conversation: Any, msg: Any, status: str) -> dict:
    """The client got (or read) a counsellor message; named by the helpline's own id."""
    return envelope("message.acknowledged", {
        "session_id": conversation.id,
        "message_id": msg.sender_message_id,
        "status": status,
    })


def events(event_type: str, data: Mapping[str, Any]) -> list[HelplineEvent]:
    """A validated callback's ``data`` as protocol events."""
    ref = ConversationRef(session_id=data.get("session_id") or None,
                          client_address=data.get("recipient") or None)
    if event_type == "message.created":
        return [CounsellorMessage(ref=ref, text=data.get("text") or "",
                                  message_id=data.get("message_id") or None,
                                  counsellor=data.get("counsellor") or None,
                                  attachments=tuple(data.get("attachments") or ()))]
    if event_type == "conversation.assigned":
        return [Assignment(ref=ref, counsellor=data.get("counsellor") or None)]
    if event_type == "message.acknowledged":
        return [Acknowledgement(ref=ref, message_id=data["message_id"],
                                status=data.get("status") or "delivered")]
    if event_type == "conversation.closed":
        return [HelplineClose(ref=ref, reason=data.get("reason") or None,
                              counsellor=data.get("counsellor") or None)]
    raise ValueError(f"unknown webhook event {event_type!r}")
