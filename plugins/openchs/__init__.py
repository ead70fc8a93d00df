"""The OpenCHS helpline plugin (built in): speaks the helpline API in ``reference/openchs.md``.

Modules: ``config`` (the site's ``[helpline]`` table), ``client`` (session token cache
and authenticated posts), ``wire`` (payload shapes), ``cases`` (reporter → case →
client), ``callbacks`` (the routes the helpline calls), ``hooks`` (what pluggy sees).
"""

from .hooks import (
    helpline_check,
    helpline_close,
    helpline_create_case,
    helpline_events_from_callback,
    helpline_open,
    helpline_send_message,
    register_helpline_kinds,
    register_site_routes,
    validate_site,
)

__all__ = [
    "helpline_check",
    "helpline_close",
    "helpline_create_case",
    "helpline_events_from_callback",
    "helpline_open",
    "helpline_send_message",
    "register_helpline_kinds",
    "register_site_routes",
    "validate_site",
]
