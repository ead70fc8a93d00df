"""The webhook helpline plugin (built in): a generic JSON helpline, Standard Webhooks signed.

Lets a site that does not run OpenCHS join without code: we POST signed events
(``conversation.opened``, ``message.created``, ``conversation.closed``,
``message.acknowledged``, ``case.created``) to its URL, and it calls back, signed the same way, at
``/v1/sites/<site>/webhook/events/``.
"""

from .hooks import (
    helpline_acknowledge,
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
    "helpline_acknowledge",
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
