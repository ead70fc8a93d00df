"""Committing: an accepted request is durable before we answer, or it is a 503."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask import current_app
from sqlalchemy import event
from sqlalchemy.orm import Session

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


@contextmanager
def single_statement_writes() -> Iterator[None]:
    """Run a unit of work whose one write is a single statement without BEGIN and COMMIT.

    PostgreSQL commits a statement run outside a transaction as it completes, durably
    (``synchronous_commit`` holds for it as for a COMMIT): the answer to it comes after
    the commit, so a 2xx sent after it is sent after durability, as before. Reads see
    what is committed, as they would in a READ COMMITTED transaction. What it saves is
    two round trips of the hot path (an accepted client message): ``BEGIN`` and
    ``COMMIT``, each a wait on a busy machine.

    Two writes would each commit alone, so a flush of anything pending is refused
    inside (:func:`_one_statement_only`). Elsewhere than PostgreSQL it does nothing.
    """
    if db.session.get_bind().dialect.name != "postgresql":
        yield
        return
    if db.session().in_transaction():
        db.session.rollback()  # a read made before (a credential looked up): nothing to keep
    db.session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    db.session.info["single_statement"] = True
    try:
        yield
    finally:
        db.session.info.pop("single_statement", None)


@event.listens_for(Session, "before_flush")
def _one_statement_only(session: Session, _context, _instances) -> None:
    """Inside :func:`single_statement_writes`, a flush would be a write committed on its
    own, apart from the unit's one statement: a programming error, refused loudly."""
    if session.info.get("single_statement") and (session.new or session.dirty
                                                 or session.deleted):
        raise RuntimeError("a second write inside single_statement_writes() would commit "
                           "on its own; use a transaction")
