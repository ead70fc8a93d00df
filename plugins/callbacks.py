"""What every plugin's callback views share: finding the site, applying events.

A helpline callback names a conversation by our session id or by the client address
we sent; the events a plugin parses are applied through the conversation protocol
inside :func:`adapter.idempotency.respond`, so they commit together and a repeat
(same message id, same ``Idempotency-Key``) changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from flask import request

from adapter import protocol
from adapter.errors import ApiError
from adapter.sites import Site
from adapter.state import state_of

from .types import (
    Acknowledgement,
    Assignment,
    ConversationRef,
    CounsellorMessage,
    HelplineClose,
    HelplineEvent,
)

ACK_STATUSES = ("delivered", "read", "failed")


def site_of_kind(code: str, kind: str) -> Site:
    """The site a callback URL names; 404 if unknown or served by another plugin."""
    site = state_of().sites.get(code)
    if site is None or site.plugin != kind:
        raise ApiError(404, "site_not_found", f"no {kind} site {code!r}")
    return site


def parse_events(site: Site, action: str, payload: dict[str, Any]) -> list[HelplineEvent]:
    """A callback as events: a plugin's override for the site, else the kind's own."""
    state = state_of()
    events = state.pm.hook.helpline_events_from_callback(
        site=site, action=action, payload=payload, headers=dict(request.headers))
    kind = state.kinds[site.plugin]
    if events is None and kind.events is not None:
        events = kind.events(action, payload)
    if events is None:
        raise ApiError(404, "callback_not_supported", f"no plugin handles {action!r} here")
    return list(events)


Resolver = Callable[[Site, ConversationRef], Any]


def default_resolver(site: Site, ref: ConversationRef):
    by_contact = state_of().kinds[site.plugin].shares_contact(site.helpline)
    return protocol.conversation_for_ref(site, ref.session_id, ref.client_address,
                                         by_contact=by_contact)


def apply_events(site: Site, events: Iterable[HelplineEvent], actor: str,
                 resolve: Resolver = default_resolver) -> tuple[int, dict[str, Any]]:
    """Apply events in order; the answer is the last event's result (201 if it created)."""
    status, body = 200, {"status": "ok"}
    for event in events:
        conversation = resolve(site, event.ref)
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
