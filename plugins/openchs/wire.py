"""OpenCHS payloads: what a message looks like on the wire, and what the helpline sends back."""

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

#: Reply ``message_type`` values whose ``content`` is a link to media, not text.
MEDIA_TYPES = frozenset({"image", "audio", "video", "document", "file", "voice"})


def unix_seconds(when: datetime | None) -> str:
    """``timestamp`` as the helpline stores it: unix seconds, as text. Our times are naive UTC."""
    if when is None:
        when = datetime.now(UTC)
    elif when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return str(int(when.timestamp()))


def client_address(conversation: Any) -> str:
    """``from``: the pseudonym, unless the site chose the chatbot's own contact reference.

    ``address = "contact"`` reproduces the incumbent gateway (the RapidPro contact, which
    may be a phone number) and is only for sites whose helpline needs it: the kind
    declares it, and the core then fills ``conversation.contact``.
    """
    return conversation.contact or conversation.client


def message_body(helpline: Mapping[str, Any], *, session_id: str, message_id: str, sender: str,
                 text: str, when: datetime | None) -> dict[str, str]:
    """The ``msg/`` body, exactly the fields the helpline stores (``reference/openchs.md``)."""
    return {
        "channel": helpline["channel"],
        "timestamp": unix_seconds(when),
        "session_id": session_id,
        "message_id": message_id,
        "from": sender,
        "message": text,
        "mime": helpline["mime"],
    }


def text_with_attachments(text: str | None, attachments: list[str] | None) -> str:
    """``msg/`` carries text only: attachment URLs go on their own lines after it."""
    parts = [text] if text else []
    parts += list(attachments or ())
    return "\n".join(parts)


def events(action: str, payload: Mapping[str, Any]) -> list[HelplineEvent]:
    """Turn a validated callback body into protocol events."""
    ref = ConversationRef(session_id=payload.get("session_id") or None,
                          client_address=payload.get("recipient") or None)
    if action == "message":
        content = payload.get("content") or ""
        media = (payload.get("message_type") or "text") in MEDIA_TYPES
        return [CounsellorMessage(
            ref=ref,
            text="" if media else content,
            attachments=(content,) if media and content else (),
            message_id=payload.get("message_id") or None,
            counsellor=payload.get("counsellor") or payload.get("agent") or None,
        )]
    if action == "close":
        return [HelplineClose(ref=ref, reason=payload.get("reason") or None,
                              counsellor=payload.get("counsellor") or None)]
    if action == "assign":
        return [Assignment(ref=ref, counsellor=payload.get("counsellor") or None)]
    if action == "ack":
        return [Acknowledgement(ref=ref, message_id=payload["message_id"],
                                status=payload.get("status") or "delivered")]
    raise ValueError(f"unknown openchs callback {action!r}")


def created_id(body: Any, resource: str) -> str | None:
    """The new row's id: ``{"cases": {"101": [...]}}`` now, ``{"cases": [[101, ...]]}`` before."""
    if not isinstance(body, Mapping):
        return None
    rows = body.get(resource)
    if isinstance(rows, Mapping) and rows:
        return str(next(iter(rows)))
    if isinstance(rows, list) and rows and isinstance(rows[0], list) and rows[0]:
        return str(rows[0][0])
    return None


def queue_position(body: Any) -> int | None:
    """The hunting daemon's answer, ``{"session_id", "state", "position"}``: the position
    (1: next) while the chat is hunting; anything else (taken, unknown, a shape we do
    not know) is None, never a guess."""
    if not isinstance(body, Mapping):
        return None
    position = body.get("position")
    if isinstance(position, bool) or not isinstance(position, int) or position < 1:
        return None
    return position
