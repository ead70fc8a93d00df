"""The hooks a helpline plugin may implement. Each returns ``None`` for sites of other kinds.

Hooks that act on one site are ``firstresult``: the plugin whose kind matches
``site.plugin`` answers, the others return ``None``. Built-ins are ``trylast`` so a
country's own plugin can take over a step for its site. An implementation may take
fewer arguments than its spec; the core always calls with keywords.
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


@hookspec
def register_site_routes():
    """Return ``(kind, blueprint)`` pairs mounted at ``/v1/sites/<site>/<kind>/``.

    Views receive ``site`` (the code) and must 404 a site of another kind.
    """


@hookspec(firstresult=True)
def helpline_open(site, conversation, http):
    """Tell the helpline a conversation starts; return a SendResult or raise DeliveryFailure.

    Runs in a delivery job; ``http`` is a pooled session with default timeouts.
    """


@hookspec(firstresult=True)
def helpline_send_message(site, conversation, message, http):
    """Send one client message to the helpline; return a SendResult or raise DeliveryFailure.

    May run more than once for one message (retries): send ``message.id`` so the
    helpline can deduplicate.
    """


@hookspec(firstresult=True)
def helpline_close(site, conversation, closed_by, http):
    """Tell the helpline the chatbot side ended it (``closed_by``: client/timeout); a SendResult."""


@hookspec(firstresult=True)
def helpline_acknowledge(site, conversation, message, status, http):
    """Tell the helpline the client received (or read) a counsellor message; a SendResult.

    Only called for kinds with ``supports_acks``.
    """


@hookspec(firstresult=True)
def helpline_create_case(site, case, progress, save_progress, http):
    """Create a case at the helpline, calling ``save_progress(CaseProgress)`` after each step.

    Return the final CaseProgress (with ``reference``) or raise DeliveryFailure; a retry
    gets the saved progress, so no step runs twice.
    """


@hookspec(firstresult=True)
def helpline_events_from_callback(site, action, payload, headers):
    """Turn a validated helpline callback into a list of protocol events (CounsellorMessage, ...).

    Called by the plugin's own callback views after authentication, so another
    plugin may take over the parsing for a site.
    """


@hookspec(firstresult=True)
def helpline_check(site, http):
    """Check the helpline is reachable and accepts our credentials; return a CheckResult.

    Used by ``helpline-adapter sites check``; must not log secrets.
    """
