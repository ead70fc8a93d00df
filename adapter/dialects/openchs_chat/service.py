"""The seed's chat API mapped onto the conversation protocol.

A ``chat_session`` is a conversation's external id, a WENI chat is a client message,
an OUTBOX/HELPLINE chat is a counsellor message, and a close names the side ending it.
Functions add to the session; the routes commit (:func:`adapter.idempotency.respond`)
so nothing is answered 201 before it is durable.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from flask import current_app

from ... import access, login_limits, protocol
from ...auth import issue_token, password_matches, token_ttl
from ...callers import Caller
from ...errors import ApiError
from ...extensions import db
from ...idempotency import key_as_id
from ...models import ApiClient, Conversation, Direction, Message, utcnow
from ...state import state_of
from .schemas import CLIENT_SOURCES

log = logging.getLogger(__name__)

DIALECT = "openchs_chat"
OUT_SOURCE = {Direction.TO_HELPLINE: "WENI", Direction.TO_CLIENT: "HELPLINE"}


# ---- tokens --------------------------------------------------------------------------

def login(username: str, password: str) -> tuple[str, datetime]:
    """A new time-bound token for an account's password (the caller commits).

    Failed logins are limited per account name and per address before any hash is
    checked (:mod:`adapter.login_limits`): past the limit, 429 even for the right password.
    """
    with login_limits.attempt("client", username) as attempt:
        client = db.session.execute(
            db.select(ApiClient).where(ApiClient.name == username)
        ).scalar_one_or_none()
        usable = client is not None and client.revoked_at is None
        # Always check a hash, so an unknown or revoked account takes as long as a real one.
        if not password_matches(client.password_hash if usable else None, password) \
                or not usable:
            attempt.failed()
            raise ApiError(401, "invalid_credentials",
                           "unable to log in with these credentials",
                           {"non_field_errors": ["Unable to log in with provided credentials."]},
                           headers={"WWW-Authenticate": "Token"})
        ttl = token_ttl()
        token = issue_token(client=client, ttl=ttl)
        log.info("compat.token_issued", extra={"client": client.name})
        return token, utcnow() + timedelta(seconds=ttl)


# ---- deduplication -------------------------------------------------------------------

def derived_message_ids(sender: str, session: str, text: str, window: int,
                        now: float | None = None) -> tuple[str, str]:
    """Dedupe keys for a chat without a message id: this time bucket's, then the last one's.

    Checking the previous bucket too catches a repeat that straddles a bucket boundary,
    so two identical posts less than ``window`` seconds apart are always one message.
    """
    bucket = int((time.time() if now is None else now) // max(window, 1))

    def key(b: int) -> str:
        material = json.dumps([sender, session, text, b], ensure_ascii=False)
        return "chat:" + hashlib.sha256(material.encode()).hexdigest()

    return key(bucket), key(bucket - 1)


def _dedupe_ids(body: Mapping[str, Any], idempotency_key: str | None) -> tuple[str, str | None]:
    """The message id to store, and an earlier-bucket id that also counts as a repeat."""
    if body.get("message_id"):
        return body["message_id"], None
    if idempotency_key:
        return key_as_id(idempotency_key), None
    window = int(current_app.config["CHAT_DEDUPE_WINDOW_SECONDS"])
    return derived_message_ids(body["chat_sender"], body["chat_session"],
                               body["chat_message"], window)


def _earlier(conversation: Conversation, direction: str, message_id: str | None,
             ) -> Message | None:
    if message_id is None:
        return None
    found = protocol.find_message(conversation, direction, message_id)
    return found if found is not None and found.sender_message_id == message_id else None


# ---- sending -------------------------------------------------------------------------

def post_chat(client: Caller, body: Mapping[str, Any],
              idempotency_key: str | None) -> tuple[Message, Conversation]:
    """A chat from either side; a repeat answers the first message."""
    if body["chat_source"] in CLIENT_SOURCES:
        _require_role(client, "chatbot", "WENI chats need a chatbot account")
        return _client_chat(client, body, idempotency_key)
    _require_role(client, "helpline", "OUTBOX/HELPLINE chats need a helpline account")
    return _counsellor_chat(client, body, idempotency_key)


def _require_role(client: Caller, role: str, why: str) -> None:
    if client.role != role:
        raise ApiError(403, "forbidden", why, {"chat_source": [why]})


def _client_chat(client: Caller, body: Mapping[str, Any],
                 idempotency_key: str | None) -> tuple[Message, Conversation]:
    message_id, earlier_id = _dedupe_ids(body, idempotency_key)
    conversation = access.lookup(client, body["chat_session"])
    if conversation is not None and access.may_see(client, conversation.namespace, write=True):
        access.require_site(client, conversation.site)
        earlier = _earlier(conversation, Direction.TO_HELPLINE, earlier_id)
        if earlier is not None:
            return earlier, conversation
        message, _ = protocol.accept_client_message(
            conversation, protocol.ClientMessage(message_id, body["chat_message"]))
        return message, conversation
    # Not one of this client's: a new chat session (an id the adapter issued to another
    # client's conversation is refused by start_conversation, never aliased).
    site = _site_for_new_chat(client, body)
    contact_uuid, urn = contact_of(body["chat_sender"])
    conversation, _ = protocol.start_conversation(
        protocol.StartRequest(
            conversation_id=body["chat_session"], site=site.code,
            location=body.get("location"), contact_uuid=contact_uuid, urn=urn,
            dialect=DIALECT),
        site, client.name, client.namespace)
    # No flush before the commit: a concurrent start of the same session must fail at
    # the commit, where respond() turns it into a replay, not half-way through.
    with db.session.no_autoflush:
        message, _ = protocol.accept_client_message(
            conversation, protocol.ClientMessage(message_id, body["chat_message"]))
    return message, conversation


PHONE = re.compile(r"^\+?[0-9][0-9 ().-]{4,30}$")
URN = re.compile(r"^[a-z][a-z0-9]{1,19}:\S+$")


def contact_of(chat_sender: str) -> tuple[str | None, str | None]:
    """``chat_sender`` as (contact uuid, URN). The seed's own example is a phone number:
    anything shaped like one, or like a URN (``tel:+254…``, ``whatsapp:…``), is a URN
    (pseudonymised, purged with retention, never shown to the helpline unless the site
    opts in); anything else is RapidPro's contact uuid, as the incumbent sent it."""
    value = chat_sender.strip()
    if PHONE.match(value):
        digits = re.sub(r"[^0-9]", "", value)
        return None, "tel:" + ("+" if value.startswith("+") else "") + digits
    if URN.match(value) and not _looks_like_uuid(value):
        return None, value
    return value, None


def _looks_like_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _site_for_new_chat(client: Caller, body: Mapping[str, Any]):
    """Explicit ``site``/``location`` when sent, else the account's one site."""
    registry = protocol.sites()
    if body.get("site") or body.get("location"):
        site, tried = registry.route(site=body.get("site"), location=body.get("location"),
                                     urn=None)
        field = "site" if body.get("site") else "location"
    elif client.sites and len(client.sites) == 1:
        site, tried = registry.get(client.sites[0]), [f"the account's site {client.sites[0]!r}"]
        field = "site"
    else:
        why = "this account serves several sites: send `site` or `location`"
        raise ApiError(422, "unroutable", why, {"site": [why]})
    if site is None:
        why = "no site for " + ", ".join(tried)
        raise ApiError(422, "unroutable", why, {field: [why]})
    access.require_site(client, site.code)
    return site


def _counsellor_chat(client: Caller, body: Mapping[str, Any],
                     idempotency_key: str | None) -> tuple[Message, Conversation]:
    conversation = _existing(client, body["chat_session"])
    message_id, earlier_id = _dedupe_ids(body, idempotency_key)
    earlier = _earlier(conversation, Direction.TO_CLIENT, earlier_id)
    if earlier is not None:
        return earlier, conversation
    message, _ = protocol.accept_counsellor_message(
        conversation, text=body["chat_message"], message_id=message_id,
        counsellor=body.get("counsellor") or body["chat_sender"], attachments=[],
        actor=client.name)
    return message, conversation


def _existing(client: Caller, session: str) -> Conversation:
    """A chat the caller may act on: a chatbot account names it by its own session id
    (or ours), a helpline account by ours, the session id its helpline was given."""
    try:
        return access.conversation_for(client, session)
    except ApiError as problem:
        if problem.status != 404:
            raise
        raise ApiError(404, "conversation_not_found", "no chat with this chat_session",
                       {"chat_session": ["unknown chat session"]}) from None


# ---- closing -------------------------------------------------------------------------

def close_chat(client: Caller, session: str, source: str | None) -> Conversation:
    """End a chat from the side named (default: the caller's). Closing twice is a no-op."""
    conversation = _existing(client, session)
    source = source or ("WENI" if client.role == "chatbot" else "HELPLINE")
    if source in CLIENT_SOURCES:
        _require_role(client, "chatbot", "only a chatbot account closes as WENI")
        protocol.close_from_chatbot(conversation, client.name, None)
    else:
        _require_role(client, "helpline", "only a helpline account closes as HELPLINE")
        protocol.close_from_helpline(conversation, None, client.name)
    return conversation


# ---- listing -------------------------------------------------------------------------

def _visible_to(client: Caller):
    """A chatbot account sees the chats of its namespace (every namespace with
    ``reads_all``), a helpline account every chat; both only at their sites."""
    sites = db.true() if client.sites is None else Conversation.site.in_(client.sites)
    if client.role == access.CHATBOT and not client.reads_all:
        return db.and_(Conversation.namespace == client.namespace, sites)
    return sites


def list_chats(client: Caller, page: int, page_size: int,
               ) -> tuple[int, list[tuple[Message, Conversation]]]:
    """The total, and one page of the caller's chats (messages), newest first."""
    visible = _visible_to(client)
    count = db.session.execute(
        db.select(db.func.count(Message.seq)).join(Conversation).where(visible)
    ).scalar_one()
    rows = db.session.execute(
        db.select(Message, Conversation).join(Conversation).where(visible)
        .order_by(Message.seq.desc()).offset((page - 1) * page_size).limit(page_size)
    ).all()
    return count, [(message, conversation) for message, conversation in rows]


def chat_view(message: Message, conversation: Conversation, client: Caller) -> dict:
    """A message as the seed's gateway showed a chat, to ``client``.

    The chatbot that opened the chat sees its own ids. Anybody else (a helpline account)
    sees the session id the helpline knows (ours) and the client's pseudonym, never a
    contact uuid or phone number, unless the site chose to give its helpline the contact.
    """
    from_client = message.direction == Direction.TO_HELPLINE
    own = client.role == access.CHATBOT and conversation.namespace == client.namespace
    if own:
        contact = conversation.contact_uuid or _urn_path(conversation.contact_urn) \
            or conversation.client_pseudonym
        session = conversation.external_id
    else:
        contact = shown_to_helpline(conversation)
        session = conversation.id
    return {
        "uuid": message.id,
        "chat_sender": contact if from_client else message.sender,
        "chat_receiver": conversation.site if from_client else contact,
        "chat_message": message.text if client.can_read_text else None,
        "chat_session": session,
        "chat_source": OUT_SOURCE.get(message.direction, message.direction),
        "status": message.status,
        "created_at": message.created_at,
    }


def _urn_path(urn: str | None) -> str | None:
    return urn.split(":", 1)[-1] if urn else None


def shown_to_helpline(conversation: Conversation) -> str:
    """The client address the site's helpline is given (the pseudonym by default)."""
    site = protocol.sites().get(conversation.site)
    if site is not None and state_of().kinds[site.plugin].shares_contact(site.helpline):
        return conversation.contact_uuid or _urn_path(conversation.contact_urn) \
            or conversation.client_pseudonym
    return conversation.client_pseudonym
