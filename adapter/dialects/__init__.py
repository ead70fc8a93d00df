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
- ``weni_ticketer``: Weni mailroom's generic ticketer contract (``/v1/tickets``);
  replies through signed callbacks to the ticket's ``webhook_base_url``.
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
    #: ``events()`` → ``plan(site, event, params)``: the chatbot deliveries a protocol
    #: event makes for one of its conversations (``[(event, params), ...]``); None: the
    #: RapidPro rule (the site's ``[rapidpro.flows]``).
    events: Callable[[], Callable[..., list[tuple[str, dict]]]] | None = None
    #: The CLI's spelling, when it differs from ``name``.
    cli_name: str | None = None


def _rapidpro_blueprints():
    from .rapidpro_webhook.routes import BLUEPRINTS

    return BLUEPRINTS


def _openchs_chat_blueprints():
    from .openchs_chat.routes import BLUEPRINTS

    return BLUEPRINTS


def _rapidpro_api():
    from .rapidpro_api.outbound import prepare_chatbot_call

    return prepare_chatbot_call


def _weni_blueprints():
    from .weni_ticketer.routes import BLUEPRINTS

    return BLUEPRINTS


def _weni_outbound():
    from .weni_ticketer.outbound import prepare_callback

    return prepare_callback


def _weni_events():
    from .weni_ticketer.outbound import plan_events

    return plan_events


RAPIDPRO = Dialect("rapidpro", "RapidPro/Weni Call Webhook nodes; replies through RapidPro's "
                   "API", _rapidpro_blueprints, _rapidpro_api)
OPENCHS_CHAT = Dialect("openchs_chat", "The seed's OpenCHS chat API (drop-in for Weni's "
                       "integration); replies through RapidPro's API",
                       _openchs_chat_blueprints, _rapidpro_api,
                       # the seed's own curl examples omit Content-Type
                       any_content_type=frozenset({openchs_chat.BLUEPRINT_NAME,
                                                   openchs_chat.SEED_BLUEPRINT_NAME}))

WENI_TICKETER = Dialect("weni_ticketer", "Weni mailroom's generic ticketer (/v1/tickets); "
                        "replies through signed callbacks to the ticket's webhook_base_url",
                        _weni_blueprints, _weni_outbound, events=_weni_events,
                        cli_name="weni-ticketer")

DIALECTS: dict[str, Dialect] = {d.name: d for d in (RAPIDPRO, OPENCHS_CHAT, WENI_TICKETER)}
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


def chatbot_events(site, conversation, event: str, params: dict):
    """What ``event`` makes for ``conversation``'s chatbot (``AdapterState.chatbot_events``):
    its dialect's plan, or None for the default rule."""
    dialect = DIALECTS.get(conversation.dialect or DEFAULT)
    if dialect is None or dialect.events is None:
        return None
    return dialect.events()(site, event, params, conversation.language)
