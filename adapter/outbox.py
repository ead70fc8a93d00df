"""Adding deliveries to the outbox, in the caller's transaction."""

from __future__ import annotations

from .extensions import db
from .models import Conversation, Delivery, utcnow
from .sites import Site

HELPLINE = "helpline"
CHATBOT = "chatbot"


def lane_for(target: str, conversation_id: str | None = None, case_id: str | None = None) -> str:
    """Deliveries in one lane go out one at a time, oldest first."""
    return f"{conversation_id or 'case:' + str(case_id)}:{target}"


def add_delivery(
    *,
    site: str,
    target: str,
    action: str,
    conversation: Conversation | None = None,
    message_id: str | None = None,
    case_id: str | None = None,
    params: dict | None = None,
) -> Delivery:
    conversation_id = conversation.id if conversation is not None else None
    delivery = Delivery(
        lane=lane_for(target, conversation_id, case_id),
        site=site,
        target=target,
        action=action,
        conversation_id=conversation_id,
        message_id=message_id,
        case_id=case_id,
        params=params,
        due_at=utcnow(),
    )
    db.session.add(delivery)
    # Noted for commit(), which wakes the workers once the row is durable.
    db.session.info["deliveries_added"] = True
    return delivery


def add_chatbot_event(
    site: Site, conversation: Conversation | None, event: str, params: dict | None = None,
    case_id: str | None = None,
) -> Delivery | None:
    """Queue an event to the chatbot, if the site sends that event anywhere."""
    rapidpro = site.rapidpro
    if rapidpro is None or (event != "message" and event not in rapidpro.flows):
        return None
    needs_flow = event == "message" and rapidpro.message_mode == "flow_starts"
    if needs_flow and "message" not in rapidpro.flows:
        return None
    return add_delivery(
        site=site.code,
        target=CHATBOT,
        action="message" if event == "message" else "event",
        conversation=conversation,
        message_id=(params or {}).get("message_id") if event == "message" else None,
        case_id=case_id,
        params={"event": event, **(params or {})},
    )
