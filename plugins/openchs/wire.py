"""OpenCHS payloads: what a message looks like on the wire, and what the helpline sends back."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from plugins.api import content_type_of
from plugins.types import (
    Acknowledgement,
    Assignment,
    Attachment,
    ConversationRef,
    CounsellorMessage,
    HelplineClose,
    HelplineEvent,
    MessageView,
)

#: Reply ``message_type`` values whose ``content`` is a link to media, not text, and the
#: content type each says (RapidPro's partial types, as its flows write them).
MEDIA_CONTENT_TYPES = {"image": "image", "audio": "audio", "voice": "audio", "video": "video",
                       "document": "application", "file": "application"}
MEDIA_TYPES = frozenset(MEDIA_CONTENT_TYPES)


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
                 text: str, when: datetime | None, mime: str | None = None) -> dict[str, str]:
    """The ``msg/`` body, exactly the fields the helpline stores (``reference/openchs.md``);
    ``mime`` is the site's (text) unless a part says otherwise."""
    return {
        "channel": helpline["channel"],
        "timestamp": unix_seconds(when),
        "session_id": session_id,
        "message_id": message_id,
        "from": sender,
        "message": text,
        "mime": mime or helpline["mime"],
    }


#: The ``mime`` of an attachment whose type nobody told us.
UNKNOWN_MIME = "application/octet-stream"


@dataclass(frozen=True)
class Part:
    """One ``msg/`` post of a message sent in parts."""

    step: str  # its key in the delivery's progress: "text", "1", "2", ...
    message_id: str  # ``<message id>`` for the text, ``<message id>/<n>`` for attachment n
    text: str
    mime: str | None  # None: the site's own (text)


def attachment_mime(media: Attachment) -> str:
    """A full ``type/subtype`` for ``mime``: the declared type, else ``application/
    octet-stream`` (a bare ``image`` says too little to be a MIME type)."""
    declared = (media.content_type or "").lower()
    return declared if "/" in declared else UNKNOWN_MIME


def message_parts(message: MessageView) -> list[Part]:
    """The text (if any) first, then each attachment as its own post, its URL the message
    and its content type the ``mime``. The ids are stable across retries and distinct."""
    parts = [Part("text", message.id, message.text, None)] if message.text else []
    media = message.media or tuple(Attachment(url) for url in message.attachments)
    for number, item in enumerate(media, start=1):
        parts.append(Part(str(number), f"{message.id}/{number}", item.url, attachment_mime(item)))
    return parts


def text_with_attachments(text: str | None, attachments: list[str] | None) -> str:
    """One ``msg/`` with attachment URLs on their own lines after the text: how a message
    goes when the core calls ``send_message`` (``send_message_parts`` sends one post per
    attachment, with its ``mime``)."""
    parts = [text] if text else []
    parts += list(attachments or ())
    return "\n".join(parts)


def typed_media(content: str, message_type: str | None) -> str:
    """A media reply's link as the core stores it: with its content type, the one the
    helpline gave (``image/jpeg:https://…``), else the one its URL's extension says if it
    agrees with ``message_type``, else ``message_type``'s own (``image:https://…``)."""
    if not content.lower().startswith(("http://", "https://")):
        return content  # typed already
    partial = MEDIA_CONTENT_TYPES.get(message_type or "", "")
    guessed = content_type_of(content) or ""
    content_type = guessed if guessed.partition("/")[0] == partial else partial
    return f"{content_type}:{content}" if content_type else content


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
            attachments=(typed_media(content, payload.get("message_type")),)
            if media and content else (),
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
