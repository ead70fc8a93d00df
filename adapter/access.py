"""Who may name, read and change a conversation or a case: the isolation rules.

``docs/security.md`` states them for people; this module is where they are enforced.

- A **chatbot** client opens conversations and cases in its *namespace* (by default its
  own name; clients created with the same ``--namespace`` share one). It names them by
  the chatbot's own id, looked up only within that namespace, or by ours. It may read
  and change what is in its namespace, at the sites it may use, and nothing else.
- A chatbot client with ``reads_all`` may also *read* (never change) the conversations
  of other namespaces at its sites, named by our id.
- A **helpline** account names conversations by our id only (the session id the
  helpline was given) and may read and act on those of its sites.
- A **monitor** reads ``/metrics`` (its sites' figures) and nothing else.
- Helpline callbacks (plugins) name a conversation by our id, or by the client address
  we sent, within the site their URL names (:func:`adapter.protocol.conversation_for_ref`).

A conversation the caller may not see answers 404, as if it did not exist: an id of
someone else's tells its holder nothing. One of its own namespace at a site it may no
longer use answers 403.
"""

from __future__ import annotations

from flask import g

from .callers import Caller
from .errors import ApiError
from .extensions import db
from .models import Case, Conversation

CHATBOT, HELPLINE, MONITOR = "chatbot", "helpline", "monitor"


def require_site(caller: Caller, site: str) -> None:
    """403 unless ``caller`` may use ``site``. The site is noted for the request, so an
    idempotent replay of the answer checks it again (:mod:`adapter.idempotency`)."""
    if not caller.may_use_site(site):
        raise ApiError(403, "forbidden", f"this client may not use site {site!r}")
    g.access_site = site


def may_see(caller: Caller, namespace: str, *, write: bool) -> bool:
    """Whether ``caller`` may read (or, with ``write``, change) what is in ``namespace``;
    the site is checked apart (:func:`require_site`)."""
    if caller.role == CHATBOT:
        return namespace == caller.namespace or (caller.reads_all and not write)
    return caller.role == HELPLINE


# ---- conversations ------------------------------------------------------------------

_BY_CHATBOT_ID = db.select(Conversation).where(
    Conversation.namespace == db.bindparam("namespace"),
    Conversation.external_id == db.bindparam("reference"))


def by_chatbot_id(namespace: str, reference: str) -> Conversation | None:
    """A conversation by the chatbot's id, within one namespace."""
    return db.session.execute(
        _BY_CHATBOT_ID, {"namespace": namespace, "reference": reference}
    ).scalar_one_or_none()


def lookup(caller: Caller, reference: str) -> Conversation | None:
    """What ``reference`` names for this caller: a chatbot's own id first, then ours.
    Not yet checked: see :func:`conversation_for`."""
    if caller.role == CHATBOT:
        found = by_chatbot_id(caller.namespace, reference)
        if found is not None:
            return found
    return db.session.get(Conversation, reference)


def check_conversation(caller: Caller, conversation: Conversation | None, *,
                       write: bool) -> Conversation:
    """``conversation`` if ``caller`` may see it (404 otherwise) at a site it may use (403)."""
    if conversation is None or not may_see(caller, conversation.namespace, write=write):
        raise ApiError(404, "conversation_not_found", "no such conversation")
    require_site(caller, conversation.site)
    return conversation


def conversation_for(caller: Caller, reference: str, *, write: bool = True) -> Conversation:
    return check_conversation(caller, lookup(caller, reference), write=write)


# ---- cases ----------------------------------------------------------------------------

def case_by_chatbot_id(namespace: str, reference: str) -> Case | None:
    return db.session.execute(
        db.select(Case).where(Case.namespace == namespace, Case.external_id == reference)
    ).scalar_one_or_none()


def case_for(caller: Caller, reference: str) -> Case:
    """A case the caller may read, by the chatbot's id (its own namespace) or by ours."""
    case = case_by_chatbot_id(caller.namespace, reference) if caller.role == CHATBOT else None
    case = case or db.session.get(Case, reference)
    if case is None or not may_see(caller, case.namespace, write=False):
        raise ApiError(404, "case_not_found", "no such case")
    require_site(caller, case.site)
    return case
