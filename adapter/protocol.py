"""The conversation protocol: every state change, with its outbox rows, in one transaction.

Functions here add to the session and leave the commit to the caller
(:func:`adapter.transactions.commit`), so a request answers 2xx only once all it
changed is durable.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache

from sqlalchemy.orm.attributes import set_committed_value

from . import access
from .audit import audit
from .errors import ApiError
from .extensions import db
from .hours import iso_local, iso_utc
from .models import (
    Conversation,
    ConversationState,
    Delivery,
    DeliveryStatus,
    Direction,
    Message,
    MessageStatus,
    new_id,
    utcnow,
)
from .outbox import (
    HELPLINE,
    MEDIA,
    add_chatbot_event,
    add_delivery,
    insert_with_delivery,
    new_delivery,
)
from .pseudonyms import client_pseudonym
from .sites import Site
from .state import clock_now, state_of

log = logging.getLogger(__name__)


@dataclass
class StartRequest:
    conversation_id: str | None
    site: str | None = None
    location: str | None = None
    risk: str | None = None
    contact_uuid: str | None = None
    urn: str | None = None
    text: str | None = None
    message_id: str | None = None
    attachments: list[str] = field(default_factory=list)
    #: Where each attachment came from in the body (``input.attachments.1``), to name it.
    attachment_paths: list[str] = field(default_factory=list)
    flow_uuid: str | None = None
    run_uuid: str | None = None
    dialect: str = "rapidpro"
    #: Where the chatbot is called back, when it says so with the start (a Weni ticketer's
    #: ``webhook_base_url``).
    callback_url: str | None = None
    intake: dict | None = None  # validated (adapter.cases.read_intake): opens a case
    #: The child's language (ISO 639-3, validated by the dialect's schema), or None.
    language: str | None = None


@dataclass
class ClientMessage:
    message_id: str | None
    text: str | None
    attachments: list[str] = field(default_factory=list)
    #: Where each attachment came from in the body (``attachments.1``), to name it.
    attachment_paths: list[str] = field(default_factory=list)


def sites():
    return state_of().sites


def site_of(conversation: Conversation) -> Site:
    site = sites().get(conversation.site)
    if site is None:
        raise ApiError(422, "site_unavailable", f"site {conversation.site!r} is not configured")
    return site


def _set_state(conversation: Conversation, state: str, actor: str, action: str, **detail) -> None:
    previous = conversation.state
    conversation.state = state
    audit(actor, action, conversation=conversation, from_state=previous, to_state=state, **detail)
    log.info(
        "conversation.state",
        extra={"conversation_id": conversation.id, "site": conversation.site, "state": state},
    )


# ---- lookups -----------------------------------------------------------------------

def find_conversation_with_message(namespace: str, reference: str, direction: str,
                                   sender_message_id: str | None,
                                   ) -> tuple[Conversation | None, Message | None]:
    """A chatbot's conversation (:func:`adapter.access.lookup`, restricted to its own
    namespace: the hot path is for writes) and, in the same query, the message of that
    conversation the chatbot already sent under ``sender_message_id``: one round trip."""
    params = {"namespace": namespace, "reference": reference, "direction": direction,
              "sender_message_id": sender_message_id or ""}
    for query in _WITH_MESSAGE:
        row = db.session.execute(query, params).first()
        if row is not None:
            return row[0], (row[1] if sender_message_id else None)
    return None, None


def _with_message_queries():
    """Built once, so each request skips building the statement and its cache key."""
    joined = db.select(Conversation, Message).outerjoin(Message, db.and_(
        Message.conversation_id == Conversation.id,
        Message.direction == db.bindparam("direction"),
        Message.sender_message_id == db.bindparam("sender_message_id")))
    in_namespace = Conversation.namespace == db.bindparam("namespace")
    return tuple(joined.where(in_namespace, column == db.bindparam("reference"))
                 for column in (Conversation.external_id, Conversation.id))


_WITH_MESSAGE = _with_message_queries()


def open_conversation_for_contact(site: str, pseudonym: str) -> Conversation | None:
    return db.session.execute(
        db.select(Conversation)
        .where(
            Conversation.site == site,
            Conversation.client_pseudonym == pseudonym,
            Conversation.state.in_(ConversationState.OPEN),
        )
        .order_by(Conversation.created_at.desc())
        .limit(1)
    ).scalar_one_or_none()


def find_message(conversation: Conversation, direction: str, reference: str) -> Message | None:
    """By the sender's message id, or by ours."""
    return db.session.execute(
        db.select(Message).where(
            Message.conversation_id == conversation.id,
            Message.direction == direction,
            (Message.sender_message_id == reference) | (Message.id == reference),
        )
    ).scalars().first()


# ---- chatbot side ------------------------------------------------------------------

def start_conversation(req: StartRequest, site: Site, actor: str, namespace: str,
                       ) -> tuple[Conversation, bool]:
    """Open a conversation (escalation) in ``namespace``. Returns it and whether it was new
    (a return within the site's ``reopen_within`` counts as new: it is opened again).

    The chatbot's conversation id names a conversation of its own namespace: a repeat is
    the same conversation. An id this adapter issued (ours) is refused unless it is that
    very conversation's chatbot id: as a new conversation's id it would alias the one we
    gave it to. Without a conversation id, a contact's open conversation at the site is
    the same conversation; otherwise a new id is made and returned. A conversation closed
    less than ``reopen_within`` seconds ago is reopened (:func:`child_returns`).
    """
    contact_ref = req.contact_uuid or req.urn
    pseudonym = client_pseudonym(site.code, contact_ref, namespace)
    if req.conversation_id:
        existing = access.by_chatbot_id(namespace, req.conversation_id)
        if existing is None and db.session.get(Conversation, req.conversation_id) is not None:
            raise ApiError(422, "conversation_id_reserved",
                           "this conversation_id is an id the adapter issued",
                           {"conversation_id": ["an id this adapter issued to a "
                                                "conversation: send the chatbot's own"]})
    elif contact_ref:
        existing = open_conversation_for_contact(site.code, pseudonym) \
            or recently_closed_for_contact(site, pseudonym)
    else:
        existing = None
    if existing is not None and may_return(existing, site):
        returned = child_returns(existing, site, actor)
        returned.language = req.language or returned.language  # as they speak today
        _add_start_content(returned, site, req, actor, namespace)
        return returned, True
    if existing is not None:
        return existing, False

    now = utcnow()
    conversation = Conversation(
        id=new_id(),
        namespace=namespace,
        external_id=req.conversation_id or "",
        site=site.code,
        dialect=req.dialect,
        state=ConversationState.REQUESTED,
        client_pseudonym=pseudonym,
        contact_uuid=req.contact_uuid,
        contact_urn=req.urn if not req.contact_uuid else None,
        risk=req.risk,
        location=req.location,
        language=req.language,
        flow_uuid=req.flow_uuid,
        run_uuid=req.run_uuid,
        chatbot_callback_url=req.callback_url,
        opened_by=actor,
        created_at=now,
        waiting_since=now,
    )
    if not conversation.external_id:
        conversation.external_id = conversation.id
    db.session.add(conversation)
    audit(actor, "start", conversation=conversation, to_state=conversation.state,
          site=site.code)
    _open_at_helpline(conversation, site)
    _add_start_content(conversation, site, req, actor, namespace)
    return conversation, True


def _add_start_content(conversation: Conversation, site: Site, req: StartRequest, actor: str,
                       namespace: str) -> None:
    """What a start carries besides the escalation: the child's message, an intake. A
    conversation closed after hours takes no message (nothing goes to its helpline)."""
    if (req.text or req.attachments) and conversation.is_open:
        _add_client_message(conversation, site, ClientMessage(req.message_id, req.text,
                                                              req.attachments))
    if req.intake is not None:
        from .cases import open_case

        open_case(site, req.intake, actor=actor, namespace=namespace, conversation=conversation)


# ---- opening hours ([hours], adapter.hours) --------------------------------------------

#: The ``closed_by`` of a conversation closed because its site was closed at its start.
CLOSED_AFTER_HOURS = "after_hours"
#: How long a held conversation's open waits when no opening is ahead at all: the relay
#: looks again at every sweep, against the schedule in force then.
NO_OPENING_RECHECK = timedelta(hours=1)


def held_due(site: Site, now: datetime) -> datetime:
    """When a held conversation's helpline open is next due (naive UTC, as ``due_at``):
    the site's next opening as the schedule now says, as a distance from the real time
    (so a test's clock and the database's clock agree on what is due)."""
    if site.hours is None:  # [hours] removed: always open
        return utcnow()
    opening = site.hours.next_opening(now)
    ahead = (opening - now) if opening is not None else NO_OPENING_RECHECK
    return utcnow() + max(ahead, timedelta(0))


def after_hours_info(conversation: Conversation, site: Site, now: datetime | None = None,
                     ) -> dict | None:
    """What a start's answer and the ``after_hours`` event say of the next opening, for a
    conversation held or closed after hours; None for any other."""
    held = conversation.held_since is not None and conversation.is_open
    if site.hours is None or not (held or conversation.closed_by == CLOSED_AFTER_HOURS):
        return None
    opening = site.hours.next_opening(now or clock_now())
    return {"next_opening": iso_utc(opening), "next_opening_local": iso_local(opening),
            "timezone": site.hours.timezone, "held": held}


def _open_at_helpline(conversation: Conversation, site: Site, params: dict | None = None,
                      ) -> None:
    """The open delivery of a conversation (re)starting, as the site's hours allow: due
    now; held for the opening (``outside = "hold"``); or none, the conversation closed
    after hours (``outside = "close"``)."""
    at_site = clock_now()
    closed_now = site.hours is not None and not site.hours.is_open(at_site)
    if closed_now and site.hours.outside == "close":
        _close_after_hours(conversation, site, at_site)
        return
    opening = add_delivery(site=site.code, target=HELPLINE, action="open",
                           conversation=conversation, params=params)
    if closed_now:
        _hold_after_hours(conversation, site, at_site, opening)


def _hold_after_hours(conversation: Conversation, site: Site, now: datetime,
                      opening: Delivery) -> None:
    """Closed now, ``outside = "hold"``: kept ``requested``; its open (and so everything
    behind it in its lane) is due at the opening. The worker decides again when it comes
    to it, and the relay moves it earlier if the schedule does (adapter.delivery.opening)."""
    conversation.held_since = utcnow()
    opening.due_at = held_due(site, now)
    audit("system", "held_after_hours", conversation=conversation, site=site.code)
    add_chatbot_event(site, conversation, "after_hours",
                      {**_event_params(conversation), **after_hours_info(conversation, site, now)})


def _close_after_hours(conversation: Conversation, site: Site, now: datetime) -> None:
    """Closed now, ``outside = "close"``: closed at once, nothing to the helpline."""
    _close(conversation, closed_by=CLOSED_AFTER_HOURS, reason="outside_hours", actor="system")
    add_chatbot_event(site, conversation, "after_hours",
                      {**_event_params(conversation), **after_hours_info(conversation, site, now)})


def opened_after_hours(conversation: Conversation) -> bool:
    """The site is open: a held conversation goes to the helpline now, and its wait
    (``assignment_timeout``, ``still_waiting``) counts from now, not from the night.
    False if it was closed meanwhile (it must then never reach the helpline)."""
    if conversation.held_since is None:
        return conversation.is_open
    now = utcnow()
    won = db.session.execute(
        db.update(Conversation)
        .where(Conversation.id == conversation.id, Conversation.held_since.is_not(None),
               Conversation.state == ConversationState.REQUESTED)
        .values(held_since=None, waiting_since=now, still_waiting_at=None)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not won:
        db.session.refresh(conversation)
        return conversation.is_open and conversation.held_since is None
    for column, value in (("held_since", None), ("waiting_since", now),
                          ("still_waiting_at", None)):
        set_committed_value(conversation, column, value)
    audit("system", "opened_after_hours", conversation=conversation, site=conversation.site)
    log.info("conversation.opened_after_hours",
             extra={"conversation_id": conversation.id, "site": conversation.site})
    return True


def _drop_held_deliveries(conversation: Conversation) -> None:
    """A held conversation closed before its site opened: what waited for the opening
    (its open, the child's messages) is never sent; kept as done, with the reason."""
    db.session.flush()
    db.session.execute(
        db.update(Delivery)
        .where(Delivery.conversation_id == conversation.id, Delivery.target == HELPLINE,
               Delivery.status.in_((DeliveryStatus.PENDING, DeliveryStatus.HELD)))
        .values(status=DeliveryStatus.DONE, done_at=utcnow(),
                last_error="not sent: closed while held after hours")
        .execution_options(synchronize_session=False))


# ---- a child who comes back ----------------------------------------------------------

#: Closes after which writing again is a new conversation, never a return.
NOT_RETURNABLE = frozenset({"after_hours"})


def may_return(conversation: Conversation, site: Site, now=None) -> bool:
    """Closed less than the site's ``reopen_within`` seconds ago, by a close that a
    return may undo: writing again reopens it instead of silently starting over."""
    window = site.policies.reopen_within
    if conversation.is_open or not window or conversation.closed_at is None:
        return False
    if conversation.closed_by in NOT_RETURNABLE:
        return False
    return ((now or utcnow()) - conversation.closed_at).total_seconds() < window


def recently_closed_for_contact(site: Site, pseudonym: str) -> Conversation | None:
    """The contact's newest conversation at ``site``, if it closed within the window."""
    if not site.policies.reopen_within:
        return None
    newest = db.session.execute(
        db.select(Conversation)
        .where(Conversation.site == site.code, Conversation.client_pseudonym == pseudonym)
        .order_by(Conversation.created_at.desc()).limit(1)
    ).scalar_one_or_none()
    return newest if newest is not None and may_return(newest, site) else None


def child_returns(conversation: Conversation, site: Site, actor: str) -> Conversation:
    """The child wrote again soon after a close: the conversation is theirs again.

    Where the site's helpline can reopen a session (its client ``supports`` "reopen"),
    the same conversation opens again in the same helpline session, and the helpline is
    told it is a return. Elsewhere a new conversation starts, linked to the closed one
    (``previous_id``); it takes over the chatbot's conversation id, and the closed one
    keeps ``<id>~<our id>``. Either way the counsellor is told it is a return.
    """
    from .delivery.helpline_calls import supports

    lock_for_change(conversation)
    if conversation.is_open:  # another request's return won the lock: it is theirs now
        return conversation
    if supports(state_of(), site, "reopen"):
        _reopen(conversation, site, actor, "return")
        return conversation
    chatbot_id = conversation.external_id
    conversation.external_id = f"{chatbot_id[:160]}~{conversation.id}"
    db.session.flush()  # the chatbot's id is free before the new conversation takes it
    now = utcnow()
    follower = Conversation(
        id=new_id(), namespace=conversation.namespace, external_id=chatbot_id,
        site=conversation.site, dialect=conversation.dialect,
        state=ConversationState.REQUESTED, client_pseudonym=conversation.client_pseudonym,
        contact_uuid=conversation.contact_uuid, contact_urn=conversation.contact_urn,
        risk=conversation.risk, location=conversation.location,
        language=conversation.language,
        flow_uuid=conversation.flow_uuid, run_uuid=conversation.run_uuid,
        chatbot_callback_url=conversation.chatbot_callback_url, opened_by=actor,
        created_at=now, waiting_since=now, reopened_at=now,
        reopen_count=conversation.reopen_count + 1, previous_id=conversation.id)
    db.session.add(follower)
    audit(actor, "return", conversation=follower, to_state=follower.state, site=site.code,
          previous=conversation.id)
    # after hours: as a start (held, or closed with no return: NOT_RETURNABLE)
    _open_at_helpline(follower, site, {"previous_session_id": conversation.id})
    return follower


def _add_client_message(conversation: Conversation, site: Site, msg: ClientMessage) -> Message:
    if msg.attachments and site.attachments.rehost.enabled:
        return _add_with_rehosting(conversation, site, msg)
    message = Message(
        id=new_id(),
        conversation_id=conversation.id,
        direction=Direction.TO_HELPLINE,
        sender_message_id=msg.message_id or "",
        sender=conversation.client_pseudonym,
        text=msg.text,
        attachments=msg.attachments or None,
        status=MessageStatus.ACCEPTED,
    )
    if not message.sender_message_id:
        message.sender_message_id = message.id
    insert_with_delivery(message, new_delivery(
        site=site.code, target=HELPLINE, action="message", conversation=conversation,
        message_id=message.id))
    log.info("message.accepted", extra={"conversation_id": conversation.id,
                                        "message_id": message.id, "site": site.code})
    return message


class ReturnNeedsTransaction(Exception):
    """A message that reopens a closed conversation writes several rows: it cannot run
    as a single statement (:func:`adapter.transactions.single_statement_writes`)."""


def _add_with_rehosting(conversation: Conversation, site: Site, msg: ClientMessage) -> Message:
    """A message of a re-hosting site (``docs/attachments.md``): its text goes now, as any
    message; its attachments are a message of their own, first fetched and stored by a
    ``rehost`` delivery in a lane of its own (a slow or failing download holds up no
    word of the child's), which then sends them to the helpline. The message the chatbot
    named (its id) is the text, or the attachments when there is no text."""
    first = None
    if msg.text:
        first = _add_client_message(conversation, site, ClientMessage(msg.message_id, msg.text))
    media = Message(
        id=new_id(),
        conversation_id=conversation.id,
        direction=Direction.TO_HELPLINE,
        sender_message_id=(msg.message_id or "") if first is None else "",
        sender=conversation.client_pseudonym,
        text=None,
        attachments=list(msg.attachments),
        status=MessageStatus.ACCEPTED,
    )
    if not media.sender_message_id:
        media.sender_message_id = media.id
    db.session.add(media)
    db.session.flush()
    add_delivery(site=site.code, target=MEDIA, action="rehost", conversation=conversation,
                 message_id=media.id, params={"attachments": list(msg.attachments)})
    log.info("message.accepted", extra={"conversation_id": conversation.id,
                                        "message_id": media.id, "site": site.code})
    return first or media


def accept_client_message(conversation: Conversation, msg: ClientMessage,
                          looked_up: tuple[str | None, Message | None] | None = None,
                          *, may_reopen: bool = False) -> tuple[Message, bool]:
    """A client message, deduplicated on the sender's message id. ``looked_up`` is a
    lookup already made (:func:`find_conversation_with_message`): the id and its result.
    With ``may_reopen``, a message to a conversation closed within the site's
    ``reopen_within`` is a return (:func:`child_returns`): it reopens, and goes there."""
    if msg.message_id:
        if looked_up is not None and looked_up[0] == msg.message_id:
            existing = looked_up[1]
        else:
            existing = find_message(conversation, Direction.TO_HELPLINE, msg.message_id)
        if existing is not None and existing.sender_message_id == msg.message_id:
            return existing, False
    if not conversation.is_open:
        site = site_of(conversation)
        if not (may_reopen and may_return(conversation, site)):
            raise ApiError(409, "conversation_closed", "the conversation is closed")
        if db.session.info.get("single_statement"):
            raise ReturnNeedsTransaction()
        conversation = child_returns(conversation, site, conversation.opened_by or "system")
    return _add_client_message(conversation, site_of(conversation), msg), True


def lock_for_change(conversation: Conversation) -> Conversation:
    """Re-read the conversation with a row lock before a state change decided on it.

    Without it, two transitions racing (the chatbot closing while the relay times the
    wait out, say) would both see it open and both act: two closes to the helpline.
    PostgreSQL takes a row lock; SQLite serialises writers and refuses a stale one.
    """
    db.session.refresh(conversation, with_for_update=True)
    return conversation


def close_from_chatbot(conversation: Conversation, actor: str, reason: str | None) -> bool:
    """End from the chatbot side; the helpline is told. False if it was already closed."""
    lock_for_change(conversation)
    if not conversation.is_open:
        return False
    site = site_of(conversation)
    _close(conversation, closed_by="client", reason=reason or "resolved", actor=actor)
    if conversation.held_since is not None:  # never at the helpline: nothing to close there
        _drop_held_deliveries(conversation)
        conversation.held_since = None
        return True
    add_delivery(site=site.code, target=HELPLINE, action="close", conversation=conversation,
                 params={"closed_by": "client"})
    return True


def reopen_from_chatbot(conversation: Conversation, actor: str) -> bool:
    """A closed conversation opened again by the chatbot: back to ``requested``, hunting
    afresh, and opened at the helpline again (a new open delivery, after the close in its
    lane). False if it was open already (nothing changes)."""
    lock_for_change(conversation)
    if conversation.is_open:
        return False
    _reopen(conversation, site_of(conversation), actor, "reopen")
    return True


def _reopen(conversation: Conversation, site: Site, actor: str, action: str) -> None:
    """Open a closed conversation again in its own helpline session (the caller locked
    it and checked it may be): hunting afresh, the helpline told it is a return."""
    now = utcnow()
    previous = {"closed_by": conversation.closed_by, "reason": conversation.close_reason}
    conversation.closed_by = conversation.close_reason = conversation.closed_at = None
    conversation.counsellor = conversation.assigned_at = conversation.no_counsellor_at = None
    conversation.still_waiting_at = conversation.held_since = None
    conversation.waiting_since = conversation.reopened_at = now
    conversation.reopen_count = (conversation.reopen_count or 0) + 1
    _set_state(conversation, ConversationState.REQUESTED, actor, action, **previous)
    _open_at_helpline(conversation, site, {"reopened": True})  # after hours: as a start


def _close(conversation: Conversation, *, closed_by: str, reason: str, actor: str) -> None:
    from .transcripts import queue_transcript

    conversation.closed_by = closed_by
    conversation.close_reason = reason
    conversation.closed_at = utcnow()
    _set_state(conversation, ConversationState.CLOSED, actor, "close",
               closed_by=closed_by, reason=reason)
    queue_transcript(conversation, site_of(conversation))


def acknowledge_from_chatbot(conversation: Conversation, message_ref: str, status: str,
                             actor: str) -> Message:
    """The chatbot says a counsellor message reached (or failed to reach) the client."""
    message = find_message(conversation, Direction.TO_CLIENT, message_ref)
    if message is None:
        raise ApiError(404, "message_not_found", "no counsellor message with that id",
                       {"message_id": ["unknown message"]})
    if _advance_status(message, status):
        audit(actor, "ack", conversation=conversation, message_id=message.id, status=status)
        site = site_of(conversation)
        kinds = state_of().kinds
        kind = kinds.get(site.plugin)
        if kind is not None and getattr(kind, "supports_acks", False):
            add_delivery(site=site.code, target=HELPLINE, action="ack",
                         conversation=conversation, message_id=message.id,
                         params={"status": status})
    return message


_STATUS_COLUMNS = ("status", "sent_at", "delivered_at", "failure_reason")


@cache
def _status_update(status: str, supersede_failed: bool):
    """The guarded UPDATE moving a message to ``status``, built once per status: a Core
    statement on the table, with its parameters bound per call. Built per call through
    the ORM it cost more CPU than anything else a delivery worker did (measured: a third
    of its samples holding the GIL, in statement compilation and cache keys)."""
    table = Message.__table__
    allowed = MessageStatus.PREDECESSORS[status]
    if supersede_failed:
        allowed = (*allowed, MessageStatus.FAILED)
    now = db.bindparam("now")
    values: dict = {"status": status}
    if status == MessageStatus.FAILED:
        values["failure_reason"] = db.bindparam("reason")
    else:
        values["sent_at"] = db.func.coalesce(table.c.sent_at, now)
        values["failure_reason"] = None
    if status in (MessageStatus.DELIVERED, MessageStatus.READ):
        values["delivered_at"] = db.func.coalesce(table.c.delivered_at, now)
    # OR of equalities, not IN: an IN list is expanded again at every execution.
    return (db.update(table)
            .where(table.c.id == db.bindparam("message_id"),
                   db.or_(*(table.c.status == db.literal(value) for value in allowed)))
            .values(**values)
            .returning(*(table.c[column] for column in _STATUS_COLUMNS)))


def _advance_status(message: Message, status: str, *, supersede_failed: bool = False,
                    reason: str | None = None) -> bool:
    """Move ``message`` to ``status`` if the row's status, as it is in the database now,
    may be written over (``MessageStatus.PREDECESSORS``); True if it changed.

    One guarded UPDATE (``WHERE status IN (...)``), never a decision on ``message.status``
    as read before: a worker that read ``accepted`` before its HTTP call must not write
    ``sent`` over the ``delivered`` the far side's ack committed meanwhile. ``failed`` is
    final, except that a successful delivery (``supersede_failed``: an operator replayed
    it) supersedes it. The object is brought in line with the row either way.
    """
    if status not in MessageStatus.PREDECESSORS:
        return False
    # On the session's connection (its transaction): a Core statement needs no ORM step.
    # What the session holds goes first, as an autoflush would have sent it.
    db.session.flush()
    row = db.session.connection().execute(_status_update(status, supersede_failed), {
        "message_id": message.id, "now": utcnow(),
        "reason": (reason or "")[:200] or None}).first()
    if row is None:  # refused: show what stands
        db.session.refresh(message, attribute_names=list(_STATUS_COLUMNS))
        return False
    for column, value in zip(_STATUS_COLUMNS, row, strict=True):
        set_committed_value(message, column, value)
    return True


# ---- helpline side -----------------------------------------------------------------

def conversation_for_ref(site: Site, session_id: str | None, client_address: str | None,
                         *, by_contact: bool = False) -> Conversation:
    """The conversation a helpline callback names at ``site``: by the session id the
    helpline was given (ours, never the chatbot's), else by the client address we sent:
    the pseudonym, or, for a site whose kind shares the contact (``by_contact``), the
    chatbot's contact reference."""
    conversation = None
    if session_id:
        conversation = db.session.get(Conversation, session_id)
    elif client_address and by_contact:
        conversation = _open_conversation_by_contact(site, client_address)
    elif client_address:
        conversation = open_conversation_for_contact(site.code, client_address)
    if conversation is None or conversation.site != site.code:
        raise ApiError(404, "conversation_not_found", "no such conversation at this site")
    return conversation


def _open_conversation_by_contact(site: Site, address: str) -> Conversation | None:
    """The open conversation whose contact is ``address`` (a uuid, or a URN's address,
    matched literally). Open under two chatbots at once, it is refused, never guessed:
    a guess could hand one child's reply to another chatbot's conversation."""
    found = db.session.execute(
        db.select(Conversation)
        .where(Conversation.site == site.code,
               Conversation.state.in_(ConversationState.OPEN),
               (Conversation.contact_uuid == address)
               | Conversation.contact_urn.endswith(f":{address}", autoescape=True))
        .order_by(Conversation.created_at.desc()).limit(10)
    ).scalars().all()
    if len({conversation.namespace for conversation in found}) > 1:
        raise ApiError(409, "ambiguous_recipient",
                       "several chatbots have a conversation open with this recipient",
                       {"session_id": ["required: the recipient is not unique at this site"]})
    return found[0] if found else None


def assign(conversation: Conversation, counsellor: str | None, actor: str) -> bool:
    """A counsellor took the conversation: it becomes active and the chatbot is told."""
    lock_for_change(conversation)
    if not conversation.is_open:
        raise ApiError(409, "conversation_closed", "the conversation is closed")
    if conversation.state == ConversationState.ACTIVE and (
        not counsellor or counsellor == conversation.counsellor
    ):
        return False
    conversation.counsellor = counsellor or conversation.counsellor
    conversation.assigned_at = utcnow()
    _set_state(conversation, ConversationState.ACTIVE, actor, "assign")
    add_chatbot_event(site_of(conversation), conversation, "assigned",
                      _event_params(conversation))
    return True


def accept_counsellor_message(conversation: Conversation, *, text: str, message_id: str | None,
                              counsellor: str | None, attachments: list[str], actor: str,
                              ) -> tuple[Message, bool]:
    if message_id:
        existing = find_message(conversation, Direction.TO_CLIENT, message_id)
        if existing is not None and existing.sender_message_id == message_id:
            return existing, False
    if not conversation.is_open:
        raise ApiError(409, "conversation_closed", "the conversation is closed")
    if conversation.state != ConversationState.ACTIVE or (
        counsellor and counsellor != conversation.counsellor
    ):
        assign(conversation, counsellor, actor)
    message = Message(
        id=new_id(),
        conversation_id=conversation.id,
        direction=Direction.TO_CLIENT,
        sender=counsellor or conversation.counsellor,
        text=text,
        attachments=attachments or None,
        status=MessageStatus.ACCEPTED,
    )
    message.sender_message_id = message_id or message.id
    db.session.add(message)
    add_chatbot_event(site_of(conversation), conversation, "message",
                      {**_event_params(conversation), "message_id": message.id})
    log.info("message.accepted", extra={"conversation_id": conversation.id,
                                        "message_id": message.id, "site": conversation.site})
    return message, True


def acknowledge_from_helpline(conversation: Conversation, message_ref: str, status: str,
                              actor: str) -> Message:
    message = find_message(conversation, Direction.TO_HELPLINE, message_ref)
    if message is None:
        raise ApiError(404, "message_not_found", "no client message with that id",
                       {"message_id": ["unknown message"]})
    if _advance_status(message, status):
        audit(actor, "helpline_ack", conversation=conversation, message_id=message.id,
              status=status)
        if status in (MessageStatus.DELIVERED, MessageStatus.READ):
            add_chatbot_event(site_of(conversation), conversation, "delivered",
                              {**_event_params(conversation), "message_id": message.id,
                               "chatbot_message_id": message.sender_message_id,
                               "status": status})
    return message


def close_from_helpline(conversation: Conversation, reason: str | None, actor: str) -> bool:
    lock_for_change(conversation)
    if not conversation.is_open:
        return False
    _close(conversation, closed_by="counsellor", reason=reason or "resolved", actor=actor)
    add_chatbot_event(site_of(conversation), conversation, "closed",
                      {**_event_params(conversation), "closed_by": "counsellor",
                       "reason": conversation.close_reason})
    return True


def _event_params(conversation: Conversation) -> dict:
    return {
        "conversation_id": conversation.external_id,
        "session_id": conversation.id,  # what the helpline knows it by (docs/security.md)
        "counsellor": conversation.counsellor,
    }


# ---- delivery outcomes -------------------------------------------------------------

def helpline_reached(conversation: Conversation) -> None:
    """The helpline accepted the conversation: it is hunting for a counsellor.

    The worker read the conversation before its HTTP call; the chatbot may have closed it
    meanwhile. Decided on that stale read, ``waiting`` would overwrite ``closed`` and
    reopen it (a second close would then tell the helpline twice), so it is re-read
    under the row lock first.
    """
    if conversation.state != ConversationState.REQUESTED:
        return
    lock_for_change(conversation)
    if conversation.state == ConversationState.REQUESTED:
        _set_state(conversation, ConversationState.WAITING, "system", "delivered_to_helpline")


def message_sent(message: Message, delivered: bool) -> None:
    """Our delivery succeeded. A ``failed`` left by an earlier, exhausted delivery of the
    same message is superseded: an operator replayed it, and it did get through. An ack
    the far side sent meanwhile (``delivered``, ``read``) stands."""
    _advance_status(message, MessageStatus.DELIVERED if delivered else MessageStatus.SENT,
                    supersede_failed=True)


def message_failed(message: Message, reason: str) -> None:
    """Retries exhausted, or refused for good: only a message the far side has not
    acknowledged becomes ``failed``."""
    _advance_status(message, MessageStatus.FAILED, reason=reason)


def still_waiting(conversation: Conversation, site: Site, now,
                  queue_position: int | None = None) -> None:
    """The child is still waiting: tell the chatbot how long so far and, when the
    helpline said, where they stand in its queue (the caller made sure it is once per
    period)."""
    waited = int((now - (conversation.waiting_since or conversation.created_at)).total_seconds())
    add_chatbot_event(site, conversation, "still_waiting",
                      {**_event_params(conversation), "waited_seconds": waited,
                       "queue_position": queue_position})


def no_counsellor(conversation: Conversation, site: Site) -> None:
    """Nobody took the conversation in time: tell the chatbot, once."""
    conversation.no_counsellor_at = utcnow()
    close = site.policies.on_no_counsellor == "close"
    audit("system", "no_counsellor", conversation=conversation, closes=close)
    add_chatbot_event(site, conversation, "no_counsellor",
                      {**_event_params(conversation), "closed": close,
                       "waited_seconds": site.policies.assignment_timeout})
    if close:
        _close(conversation, closed_by="timeout", reason="expired", actor="system")
        add_delivery(site=site.code, target=HELPLINE, action="close", conversation=conversation,
                     params={"closed_by": "timeout"})

