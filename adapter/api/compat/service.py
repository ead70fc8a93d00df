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
import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from flask import current_app

from ... import protocol
from ...auth import issue_token, password_matches, require_site_access, token_ttl
from ...callers import Caller
from ...errors import ApiError
from ...extensions import db
from ...idempotency import key_as_id
from ...models import ApiClient, Conversation, Direction, Message, utcnow
from .schemas import CLIENT_SOURCES

log = logging.getLogger(__name__)

DIALECT = "openchs_chat"
OUT_SOURCE = {Direction.TO_HELPLINE: "WENI", Direction.TO_CLIENT: "HELPLINE"}


# ---- tokens --------------------------------------------------------------------------

def login(username: str, password: str) -> tuple[str, datetime]:
    """A new time-bound token for an account's password (the caller commits)."""
    client = db.session.execute(
        db.select(ApiClient).where(ApiClient.name == username)
    ).scalar_one_or_none()
    usable = client is not None and client.revoked_at is None
    # Always check a hash, so an unknown or revoked account takes as long as a real one.
    if not password_matches(client.password_hash if usable else None, password) or not usable:
        raise ApiError(401, "invalid_credentials", "unable to log in with these credentials",
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
    conversation = protocol.find_conversation(body["chat_session"])
    if conversation is not None:
        require_site_access(conversation.site)
        earlier = _earlier(conversation, Direction.TO_HELPLINE, earlier_id)
        if earlier is not None:
            return earlier, conversation
        message, _ = protocol.accept_client_message(
            conversation, protocol.ClientMessage(message_id, body["chat_message"]))
        return message, conversation
    site = _site_for_new_chat(client, body)
    conversation, _ = protocol.start_conversation(
        protocol.StartRequest(
            conversation_id=body["chat_session"], site=site.code,
            location=body.get("location"), contact_uuid=body["chat_sender"], dialect=DIALECT),
        site, client.name)
    # No flush before the commit: a concurrent start of the same session must fail at
    # the commit, where respond() turns it into a replay, not half-way through.
    with db.session.no_autoflush:
        message, _ = protocol.accept_client_message(
            conversation, protocol.ClientMessage(message_id, body["chat_message"]))
    return message, conversation


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
    require_site_access(site.code)
    return site


def _counsellor_chat(client: Caller, body: Mapping[str, Any],
                     idempotency_key: str | None) -> tuple[Message, Conversation]:
    conversation = _existing(body["chat_session"])
    message_id, earlier_id = _dedupe_ids(body, idempotency_key)
    earlier = _earlier(conversation, Direction.TO_CLIENT, earlier_id)
    if earlier is not None:
        return earlier, conversation
    message, _ = protocol.accept_counsellor_message(
        conversation, text=body["chat_message"], message_id=message_id,
        counsellor=body.get("counsellor") or body["chat_sender"], attachments=[],
        actor=client.name)
    return message, conversation


def _existing(session: str) -> Conversation:
    conversation = protocol.find_conversation(session)
    if conversation is None:
        raise ApiError(404, "conversation_not_found", "no chat with this chat_session",
                       {"chat_session": ["unknown chat session"]})
    require_site_access(conversation.site)
    return conversation


# ---- closing -------------------------------------------------------------------------

def close_chat(client: Caller, session: str, source: str | None) -> Conversation:
    """End a chat from the side named (default: the caller's). Closing twice is a no-op."""
    conversation = _existing(session)
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
    """A chatbot account sees the chats it opened; a helpline account, its sites' chats."""
    if client.role == "chatbot":
        return Conversation.opened_by == client.name
    if client.sites is None:
        return db.true()
    return Conversation.site.in_(client.sites)


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


def chat_view(message: Message, conversation: Conversation, can_read_text: bool) -> dict:
    """A message as the seed's gateway showed a chat."""
    from_client = message.direction == Direction.TO_HELPLINE
    contact = conversation.contact_uuid
    return {
        "uuid": message.id,
        "chat_sender": contact if from_client else message.sender,
        "chat_receiver": conversation.site if from_client else contact,
        "chat_message": message.text if can_read_text else None,
        "chat_session": conversation.external_id,
        "chat_source": OUT_SOURCE.get(message.direction, message.direction),
        "status": message.status,
        "created_at": message.created_at,
    }
