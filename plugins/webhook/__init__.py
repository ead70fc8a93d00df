"""The webhook helpline plugin (built in): a generic JSON helpline, Standard Webhooks signed.

Lets a site that does not run OpenCHS join without code: we POST signed events
(``conversation.opened``, ``message.created``, ``conversation.closed``,
``message.acknowledged``, ``case.created``) to its URL, and it calls back, signed the same way, at
``/v1/sites/<site>/webhook/events/``.
"""

from .hooks import register_helpline_kinds

__all__ = ["register_helpline_kinds"]
