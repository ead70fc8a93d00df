"""The hooks a helpline plugin may implement.

A kind of helpline is an object (:class:`~plugins.types.HelplineKind`) the core calls
through its client and mounts its callbacks: the hooks are for discovery
(``register_helpline_kinds``), rules across a site's keys (``validate_site``) and genuine
overrides of one site (``helpline_client``, ``helpline_events_from_callback``), which
answer ``None`` for the sites they leave alone. An implementation may take fewer
arguments than its spec; the core always calls with keywords.
"""

from __future__ import annotations

import pluggy

from . import PROJECT

hookspec = pluggy.HookspecMarker(PROJECT)


@hookspec
def register_helpline_kinds():
    """Return a list of :class:`~plugins.types.HelplineKind` this plugin provides.

    Called once by the app factory; a kind registered twice fails start-up.
    """


@hookspec
def validate_site(site):
    """Return a list of problems (``"helpline.<key>: ..."``) beyond what the schema checks.

    For rules across keys; start-up fails with the site's file and these keys.
    """


@hookspec(firstresult=True)
def helpline_client(site, kind):
    """Return a :class:`~plugins.types.HelplineClient` subclass to use for ``site``
    instead of ``kind.client``, or ``None``.

    For a country taking over one step of a built-in kind (subclass its client and
    override that method). The core calls the client; nothing here sends anything.
    """


@hookspec(firstresult=True)
def helpline_events_from_callback(site, action, payload, headers):
    """Return the protocol events of a validated callback, or ``None`` to leave it to
    the kind's own ``events`` (an override for a site whose helpline speaks differently).
    """
