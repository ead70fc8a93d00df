"""What each kind of delivery does, and what its success or failure changes."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask

from plugins.types import CaseProgress, DeliveryFailure, SendResult

from .. import protocol, transcripts
from ..audit import audit
from ..extensions import db
from ..models import Case, Conversation, Delivery, Message, utcnow
from ..outbox import CHATBOT, HELPLINE, MEDIA, add_chatbot_event
from ..state import clock_now, state_of
from ..views import case_view, conversation_view, message_view
from . import helpline_calls, rehosting
from .held import SiteHeld
from .http import session_for
from .pacing import NotYet

#: Actions whose call touches the database (case steps commit their progress): these
#: run in the worker's main thread, never beside others.
SEQUENTIAL_ACTIONS = ("case",)


def runs_alone(delivery: Delivery, call: Callable) -> bool:
    """Whether this call commits progress as it goes (a case; a message sent in parts),
    and so runs in the worker's main thread, the only one with a session."""
    return delivery.action in SEQUENTIAL_ACTIONS or getattr(call, "saves_progress", False)


def prepare(app: Flask, delivery: Delivery) -> Callable[[], SendResult | CaseProgress]:
    """Read what the delivery needs (database, pacing) now, in the calling thread, and
    return the call to the far side, which touches neither the session nor the app."""
    state = state_of(app)
    site = state.sites.get(delivery.site)
    if site is None:
        raise DeliveryFailure(f"site {delivery.site!r} is not configured", retryable=True)
    problem = site.problem_for(delivery.target)
    if problem:
        raise SiteHeld(problem)
    timeout = (app.config["HTTP_CONNECT_TIMEOUT"], app.config["HTTP_READ_TIMEOUT"])
    http = session_for(site.code, delivery.target, timeout, site.verify_for(delivery.target))
    conversation = db.session.get(Conversation, delivery.conversation_id) \
        if delivery.conversation_id else None
    message = _message(delivery)
    if delivery.target == CHATBOT:
        from ..dialects import dialect_named

        # The conversation's dialect says how its chatbot hears from us.
        prepare_call = dialect_named(conversation.dialect if conversation else None).outbound()
        return prepare_call(app, site, delivery, conversation, message, http)

    if delivery.target == MEDIA:
        return rehosting.prepare_rehost(site, delivery, longest_call=sum(timeout))
    if conversation is not None and conversation.held_since is not None:
        _wait_for_opening(app, site, conversation)
    kind = helpline_calls.kind_of(state, site)
    params = delivery.params or {}
    if delivery.action == "case":
        case_view_, progress, save_progress = _case_step(delivery, kind, site)

        def call():
            return helpline_calls.call(state, site, "create_case", http, case=case_view_,
                                       progress=progress, save_progress=save_progress)

        return call
    if delivery.action == transcripts.ACTION:
        case = db.session.get(Case, delivery.case_id)
        if case is None:
            raise DeliveryFailure("case not found", retryable=False)
        transcript = transcripts.transcript_for(case, params)
        arguments = {"case": case_view(kind, site, case), "reference": case.helpline_reference,
                     "transcript": transcript}

        def call():
            return helpline_calls.call(state, site, "attach_transcript", http, **arguments)

        return call
    if delivery.action == "message" and message is not None and message.attachments \
            and conversation is not None \
            and helpline_calls.supports(state, site, "send_message_parts"):
        return _parts_call(state, site, http, delivery, kind, conversation, message)
    if delivery.action not in STEPS:
        raise DeliveryFailure(f"unknown action {delivery.action!r}", retryable=False)
    if conversation is None:
        raise DeliveryFailure("conversation not found", retryable=False)
    arguments = {"conversation": conversation_view(kind, site, conversation)}
    if delivery.action in ("message", "ack"):
        if message is None:
            raise DeliveryFailure("message not found", retryable=False)
        arguments["message"] = message_view(message)
    if delivery.action == "close":
        arguments["closed_by"] = params.get("closed_by")
    if delivery.action == "ack":
        arguments["status"] = params.get("status")

    def call():
        return helpline_calls.call(state, site, STEPS[delivery.action], http, **arguments)

    return call


def _wait_for_opening(app: Flask, site, conversation: Conversation) -> None:
    """A conversation held after hours reaches the helpline only once its site is open,
    as the schedule in force now says (a restart with new ``[hours]`` counts): until
    then its delivery waits, unattempted (``NotYet``), for the next opening."""
    now = clock_now(app)
    if site.hours is not None and not site.hours.is_open(now):
        due = protocol.held_due(site, now)
        raise NotYet(max(1.0, (due - utcnow()).total_seconds()))
    if not protocol.opened_after_hours(conversation):
        raise DeliveryFailure("not sent: closed while held after hours", retryable=False)


#: Delivery action → the client step it makes.
STEPS = {"open": "open", "message": "send_message", "close": "close", "ack": "acknowledge"}


_PRELOADED = "adapter.delivery.messages"
_KEPT = "adapter.delivery.conversations"


def preload(deliveries: list[Delivery]) -> None:
    """Load a batch's conversations and messages in two queries instead of two per row.

    Conversations land in the session's identity map (``session.get`` finds them). The
    identity map holds its objects weakly, so they are also kept in ``session.info``
    until :func:`forget_preloaded`: otherwise they are collected at once and every
    ``session.get`` of the batch queries again (measured: two queries per delivery, a
    third of a worker's samples). Messages, looked up by their public id rather than
    the primary key, are kept there too.
    """
    conversation_ids = {d.conversation_id for d in deliveries if d.conversation_id}
    conversations = db.session.execute(
        db.select(Conversation).where(Conversation.id.in_(conversation_ids))
    ).scalars().all() if conversation_ids else []
    db.session.info[_KEPT] = conversations
    message_ids = {d.message_id for d in deliveries if d.message_id}
    found = db.session.execute(
        db.select(Message).where(Message.id.in_(message_ids))
    ).scalars().all() if message_ids else []
    db.session.info[_PRELOADED] = {message.id: message for message in found}


def forget_preloaded() -> None:
    db.session.info.pop(_PRELOADED, None)
    db.session.info.pop(_KEPT, None)


def _message(delivery: Delivery) -> Message | None:
    if not delivery.message_id:
        return None
    preloaded = db.session.info.get(_PRELOADED)
    if preloaded is not None and delivery.message_id in preloaded:
        return preloaded[delivery.message_id]
    return db.session.execute(
        db.select(Message).where(Message.id == delivery.message_id)
    ).scalar_one_or_none()


def _saved_progress(delivery: Delivery) -> tuple[CaseProgress, Callable[[CaseProgress], None]]:
    """The delivery's saved progress, and how to save the next step's: committed at once,
    so a retry after a later step fails (or a crash) resumes from there."""
    saved = delivery.progress or {}
    progress = CaseProgress(steps=dict(saved.get("steps", {})), reference=saved.get("reference"))

    def save_progress(new: CaseProgress) -> None:
        delivery.progress = {"steps": dict(new.steps), "reference": new.reference}
        db.session.commit()

    return progress, save_progress


def _parts_call(state, site, http, delivery: Delivery, kind, conversation: Conversation,
                message: Message) -> Callable[[], SendResult]:
    """A message with attachments, to a kind that sends it one part per call: each part
    the helpline accepted is recorded before the next is sent (``runs_alone``)."""
    progress, save_progress = _saved_progress(delivery)
    arguments = {"conversation": conversation_view(kind, site, conversation),
                 "message": message_view(message)}

    def call():
        return helpline_calls.call(state, site, "send_message_parts", http, **arguments,
                                   progress=progress, save_progress=save_progress)

    call.saves_progress = True
    return call


def _case_step(delivery: Delivery, kind, site):
    """The case's view, its saved progress, and how to save the next step's."""
    case = db.session.get(Case, delivery.case_id)
    if case is None:
        raise DeliveryFailure("case not found", retryable=False)
    progress, save_progress = _saved_progress(delivery)
    return case_view(kind, site, case), progress, save_progress


def record_success(delivery: Delivery, outcome) -> None:
    if delivery.target == MEDIA:
        rehosting.finish(delivery, _message(delivery))
    elif delivery.target == HELPLINE:
        conversation = db.session.get(Conversation, delivery.conversation_id) \
            if delivery.conversation_id else None
        if delivery.action in ("open", "message") and conversation is not None:
            protocol.helpline_reached(conversation)
        if delivery.action == "message":
            message = _message(delivery)
            if message is not None:
                protocol.message_sent(message, delivered=getattr(outcome, "delivered", False))
        elif delivery.action == "case":
            _case_created(delivery, outcome)
    elif delivery.action == "message":
        message = _message(delivery)
        if message is not None:
            protocol.message_sent(message, delivered=False)


def record_failure(delivery: Delivery, reason: str) -> None:
    if delivery.target == MEDIA:
        # Given up: what was stored still goes, and the counsellor is told of the rest.
        rehosting.finish(delivery, _message(delivery), gave_up="it could not be fetched in time")
        return
    message = _message(delivery)
    if message is not None and delivery.action == "message":
        protocol.message_failed(message, reason)
    if delivery.target == HELPLINE and delivery.action == "case":
        _case_failed(delivery, reason)


def _case_created(delivery: Delivery, progress: CaseProgress) -> None:
    case = db.session.get(Case, delivery.case_id)
    if case is None:
        return
    case.status = "created"
    case.helpline_reference = progress.reference
    delivery.progress = {"steps": dict(progress.steps), "reference": progress.reference}
    audit("system", "case_created", case_id=case.id, reference=progress.reference)
    _case_event(case, "case_created")


def _case_failed(delivery: Delivery, reason: str) -> None:
    case = db.session.get(Case, delivery.case_id)
    if case is None:
        return
    case.status = "failed"
    case.failure_reason = reason[:200]
    audit("system", "case_failed", case_id=case.id)
    _case_event(case, "case_failed")


def _case_event(case: Case, event: str) -> None:
    site = protocol.sites().get(case.site)
    if site is None:
        return
    conversation = db.session.get(Conversation, case.conversation_id) \
        if case.conversation_id else None
    add_chatbot_event(site, conversation, event, {
        "case_id": case.id,
        "case_reference": case.helpline_reference,
        "chatbot_case_id": case.external_id,
        "conversation_id": conversation.external_id if conversation else None,
        "status": case.status,
    }, case_id=case.id)
