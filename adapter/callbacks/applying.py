"""A validated callback as protocol operations: the events a kind reads from it,
applied in order inside :func:`adapter.idempotency.respond`, so they commit together
and a repeat (same message id, same ``Idempotency-Key``) changes nothing.

A callback names a conversation by our session id (never the chatbot's id: see
``docs/security.md``) or, for a kind that shares it, by the client address we sent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from flask import request

from plugins.types import (
    ACK_STATUSES,
    Acknowledgement,
    Assignment,
    CounsellorMessage,
    HelplineClose,
    HelplineEvent,
    HelplineKind,
)

from .. import protocol
from ..errors import ApiError
from ..sites import Site
from ..state import state_of


def events_of(site: Site, kind: HelplineKind, action: str,
              payload: Mapping[str, Any]) -> list[HelplineEvent]:
    """A callback as events: a plugin's override for the site, else the kind's own."""
    events = state_of().pm.hook.helpline_events_from_callback(
        site=site, action=action, payload=dict(payload), headers=dict(request.headers))
    if events is None and kind.events is not None:
        events = kind.events(action, payload)
    if events is None:
        raise ApiError(404, "callback_not_supported", f"no plugin handles {action!r} here")
    return list(events)


def apply_events(site: Site, kind: HelplineKind, events: Iterable[HelplineEvent],
                 ) -> tuple[int, dict[str, Any]]:
    """Apply events in order; the answer is the last event's result (201 if it created)."""
    actor = f"helpline:{site.code}"
    by_contact = kind.shares_contact(site.helpline)
    status, body = 200, {"status": "ok"}
    for event in events:
        conversation = protocol.conversation_for_ref(
            site, event.ref.session_id, event.ref.client_address, by_contact=by_contact)
        status, body = _apply(conversation, event, actor)
    return status, body


def _apply(conversation, event: HelplineEvent, actor: str) -> tuple[int, dict[str, Any]]:
    answer: dict[str, Any] = {"conversation_id": conversation.id}
    if isinstance(event, CounsellorMessage):
        message, created = protocol.accept_counsellor_message(
            conversation, text=event.text, message_id=event.message_id,
            counsellor=event.counsellor, attachments=list(event.attachments), actor=actor)
        return (201 if created else 200), {**answer, "status": "accepted",
                                           "message_id": message.id}
    if isinstance(event, Assignment):
        changed = protocol.assign(conversation, event.counsellor, actor)
        return 200, {**answer, "status": "assigned" if changed else "unchanged"}
    if isinstance(event, Acknowledgement):
        if event.status not in ACK_STATUSES:
            raise ApiError(400, "invalid_request", "unknown acknowledgement status",
                           {"status": [f"one of {', '.join(ACK_STATUSES)}"]})
        message = protocol.acknowledge_from_helpline(conversation, event.message_id,
                                                     event.status, actor)
        return 200, {**answer, "status": message.status, "message_id": message.id}
    if isinstance(event, HelplineClose):
        changed = protocol.close_from_helpline(conversation, event.reason, actor)
        return 200, {**answer, "status": "closed" if changed else "already_closed"}
    raise TypeError(f"not a helpline event: {type(event).__name__}")
