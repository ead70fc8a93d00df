"""The transcript of a closed conversation, attached to its helpline case (opt-in).

A site with ``[policies] transcript_to_case = true`` whose conversation had a case
opened with it gets, at each close, a delivery in the case's lane (so after the case
itself was created): the kind's ``attach_transcript`` step. The transcript is built when
the delivery runs, from what is stored then: once retention has purged the text, no
transcript is sent, ever (the delivery ends, saying so).
"""

from __future__ import annotations

import logging

from plugins.types import DeliveryFailure, Transcript, TranscriptLine

from .extensions import db
from .models import Case, Conversation, Direction, Message
from .outbox import HELPLINE, add_delivery
from .sites import Site
from .state import state_of

log = logging.getLogger(__name__)

ACTION = "transcript"


def queue_transcript(conversation: Conversation, site: Site) -> None:
    """At a close: the transcript's delivery, if the site opts in and a case goes with it."""
    if not site.policies.transcript_to_case:
        return
    from .cases import FAILED, case_for_conversation
    from .delivery.helpline_calls import supports

    case = case_for_conversation(conversation)
    if case is None or case.status == FAILED:
        return
    if not supports(state_of(), site, "attach_transcript"):
        log.info("transcript.unsupported", extra={"site": site.code, "case_id": case.id})
        return
    add_delivery(site=site.code, target=HELPLINE, action=ACTION, case_id=case.id,
                 params={"conversation_id": conversation.id,
                         "transcript_id": f"{conversation.id}/{conversation.reopen_count or 0}"})


def transcript_for(case: Case, params: dict) -> Transcript:
    """The transcript to send now, or a permanent failure saying why there is none."""
    if case.status == "failed":
        raise DeliveryFailure("the case was not created: no transcript to attach",
                              retryable=False)
    if not case.helpline_reference:
        raise DeliveryFailure("the case has no helpline reference yet", retryable=True)
    conversation = db.session.get(Conversation, params.get("conversation_id"))
    if conversation is None:
        raise DeliveryFailure("conversation not found", retryable=False)
    messages = db.session.execute(
        db.select(Message).where(Message.conversation_id == conversation.id)
        .order_by(Message.seq)
    ).scalars().all()
    if case.purged_at is not None or any(m.purged_at is not None for m in messages):
        raise DeliveryFailure("purged by retention: the transcript is not sent",
                              retryable=False)
    lines = tuple(TranscriptLine(
        at=message.created_at,
        role="child" if message.direction == Direction.TO_HELPLINE else "counsellor",
        sender=message.sender, text=message.text,
        attachments=tuple(message.attachments or ())) for message in messages)
    return Transcript(id=params.get("transcript_id") or conversation.id,
                      session_id=conversation.id, closed_at=conversation.closed_at,
                      lines=lines)
