"""Chatbot dialects: how a chatbot talks to us, and how we talk back.

A dialect is the seam between a chatbot's wire and the conversation protocol
(:mod:`adapter.protocol`), which never knows which one it serves. Each has its own
folder — routes, schemas, wire — and names how its conversations hear from us
(``outbound``: the performer of their chatbot deliveries). A conversation remembers its
dialect (``Conversation.dialect``); a site may serve several at once.

- ``rapidpro``: RapidPro/Weni Call Webhook nodes (``/v1/conversations``, ``/v1/cases``);
  replies through RapidPro's API (broadcasts or flow starts).
- ``openchs_chat``: the seed's OpenCHS chat API (``/api/token/``, ``/api/chat/``), for
  Weni's existing integration; replies through RapidPro's API too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import openchs_chat

if TYPE_CHECKING:
    from flask_smorest import Api


@dataclass(frozen=True)
class Dialect:
    name: str  # as stored in Conversation.dialect
    description: str
    #: (blueprint, register_blueprint options) pairs; imported when the app is built.
    blueprints: Callable[[], Iterable[tuple[Any, dict]]]
    #: ``prepare(app, site, delivery, conversation, message, http)`` → the call that
    #: performs a chatbot delivery of one of its conversations.
    outbound: Callable[[], Callable[..., Callable[[], Any]]]
    #: Blueprints whose callers send JSON without saying so: read as JSON anyway.
    any_content_type: frozenset[str] = frozenset()


def _rapidpro_blueprints():
    from .rapidpro_webhook.routes import BLUEPRINTS

    return BLUEPRINTS


def _openchs_chat_blueprints():
    from .openchs_chat.routes import BLUEPRINTS

    return BLUEPRINTS


def _rapidpro_api():
    from .rapidpro_api.outbound import prepare_chatbot_call

    return prepare_chatbot_call


RAPIDPRO = Dialect("rapidpro", "RapidPro/Weni Call Webhook nodes; replies through RapidPro's "
                   "API", _rapidpro_blueprints, _rapidpro_api)
OPENCHS_CHAT = Dialect("openchs_chat", "The seed's OpenCHS chat API (drop-in for Weni's "
                       "integration); replies through RapidPro's API",
                       _openchs_chat_blueprints, _rapidpro_api,
                       # the seed's own curl examples omit Content-Type
                       any_content_type=frozenset({openchs_chat.BLUEPRINT_NAME,
                                                   openchs_chat.SEED_BLUEPRINT_NAME}))

DIALECTS: dict[str, Dialect] = {d.name: d for d in (RAPIDPRO, OPENCHS_CHAT)}
#: What a delivery with no conversation (a case started alone) speaks.
DEFAULT = RAPIDPRO.name


def dialect_named(name: str | None) -> Dialect:
    """The dialect ``name`` (a conversation's), or the default one."""
    return DIALECTS.get(name or DEFAULT) or DIALECTS[DEFAULT]


def register_dialect_routes(api: Api) -> None:
    for dialect in DIALECTS.values():
        for blueprint, options in dialect.blueprints():
            api.register_blueprint(blueprint, **options)


def any_content_type_blueprints() -> frozenset[str]:
    return frozenset().union(*(d.any_content_type for d in DIALECTS.values()))
