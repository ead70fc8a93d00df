"""Committing: an accepted request is durable before we answer, or it is a 503."""

from __future__ import annotations

from flask import current_app

from .extensions import db


def commit() -> None:
    """Commit the session, then wake the delivery workers for what was added.

    Waking is best effort: the relay finds committed deliveries by itself.
    """
    from .delivery.kick import kick

    added = db.session.info.pop("deliveries_added", False)
    db.session.commit()
    if added:
        kick(current_app)
