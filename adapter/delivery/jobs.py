"""The RQ job. It finds its work in the database, so running it twice is harmless."""

from __future__ import annotations

import logging

from flask import Flask

from . import engine
from .kick import clear_flag, kick

log = logging.getLogger(__name__)

_app: Flask | None = None


def use_app(app: Flask) -> None:
    """The worker process builds its app once and hands it to the jobs it runs."""
    global _app
    _app = app


def _get_app() -> Flask:
    global _app
    if _app is None:
        from .. import create_app

        _app = create_app()
    return _app


def drain() -> dict:
    """Deliver what is due. Raises if a delivery hit an unexpected error, after recording it."""
    app = _get_app()
    with app.app_context():
        clear_flag(app)
        result = engine.drain(app)
        if result.done or result.failed or result.retried:
            log.info("delivery.drained", extra={"count": result.done})
        if result.earliest_retry is not None:
            kick(app, delay=result.earliest_retry)
        if engine.due_exists():
            kick(app)  # the budget ran out with work left: queue another turn
        if result.unexpected is not None:
            raise result.unexpected
        return {"done": result.done, "retried": result.retried, "failed": result.failed}
