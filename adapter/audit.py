"""The audit trail: who did what to a conversation or a case, ids and states only."""

from __future__ import annotations

from .extensions import db
from .models import AuditEvent, Conversation


def audit(actor: str, action: str, *, conversation: Conversation | None = None,
          case_id: str | None = None, from_state: str | None = None,
          to_state: str | None = None, **detail) -> None:
    db.session.add(
        AuditEvent(
            conversation_id=conversation.id if conversation is not None else None,
            case_id=case_id,
            actor=actor,
            action=action,
            from_state=from_state,
            to_state=to_state,
            detail=detail or None,
        )
    )
