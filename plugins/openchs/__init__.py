"""The OpenCHS helpline plugin (built in): speaks the helpline API in ``reference/openchs.md``.

Modules: ``config`` (the site's ``[helpline]`` table), ``client`` (session token cache
and authenticated posts), ``wire`` (payload shapes), ``cases`` (reporter → case →
client), ``kind`` (the client the core calls), ``callbacks`` (the routes the helpline
calls), ``hooks`` (what pluggy sees).
"""

from .hooks import register_helpline_kinds

__all__ = ["register_helpline_kinds"]
