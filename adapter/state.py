"""What the app factory builds once per app, and the one way to reach it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flask import Flask, current_app

if TYPE_CHECKING:
    import pluggy
    from redis import Redis

    from plugins.types import HelplineKind

    from .sites import SiteRegistry

EXTENSION = "helpline_adapter"


@dataclass
class AdapterState:
    """What every request, job and command of one app reads."""

    pm: pluggy.PluginManager
    kinds: dict[str, HelplineKind]
    sites: SiteRegistry
    redis: Redis | None = None  # made on first use (adapter.queueing)
    # Not imported for their types: both modules read this state (no import cycle).
    pacers: dict[str, Any] = field(default_factory=dict)  # key prefix → delivery.pacing.Pacer
    callers: Any = None  # adapter.callers.CallerCache, made on first request
    #: ``(site, conversation, event, params)`` → the chatbot deliveries an event makes,
    #: as ``[(event, params), ...]``, or None for the default (RapidPro) rule. Set from
    #: the dialect registry, so the outbox never names a dialect.
    chatbot_events: Any = None
    #: Now (an aware datetime) as opening hours see it (:func:`clock_now`); None: the real
    #: time. Set by tests to stand on either side of an opening; nothing else sets it.
    clock: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


def state_of(app: Flask | None = None) -> AdapterState:
    """The state of ``app``, or of the current app."""
    return (app or current_app).extensions[EXTENSION]


def clock_now(app: Flask | None = None):
    """Now (aware, UTC) as opening hours see it: the app's ``AdapterState.clock`` (a
    callable giving an aware datetime) when set, the real time otherwise. The protocol,
    the worker and the relay all ask here, so a test moves one clock for them all."""
    from datetime import UTC, datetime

    clock = state_of(app).clock
    return clock() if clock is not None else datetime.now(UTC)
