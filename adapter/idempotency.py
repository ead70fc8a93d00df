"""Answering a repeated request with the first answer, and nothing done twice."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from flask import Response, g, jsonify, request
from sqlalchemy.exc import IntegrityError

from .access import require_site
from .errors import ApiError
from .extensions import db
from .models import IdempotencyRecord
from .transactions import commit

HEADERS = ("Idempotency-Key", "X-Idempotency-Key")
#: The ``idempotency_records.key`` column.
MAX_KEY_LENGTH = 255
#: Ids made from a key (a conversation or message id without one of its own) go in
#: 200-character columns (``external_id``, ``sender_message_id``).
MAX_ID_LENGTH = 200


def idempotency_key() -> str | None:
    """The request's ``Idempotency-Key`` (or ``X-Idempotency-Key``): printable ASCII, at most
    255 characters, else a 400 naming the header."""
    for name in HEADERS:
        value = request.headers.get(name, "").strip()
        if value:
            if len(value) > MAX_KEY_LENGTH:
                raise ApiError(400, "invalid_request", f"{name} is too long",
                               {name: [f"at most {MAX_KEY_LENGTH} characters"]})
            if not (value.isascii() and value.isprintable()):
                raise ApiError(400, "invalid_request", f"{name} is not printable ASCII",
                               {name: ["printable ASCII characters only"]})
            return value
    return None


def key_as_id(key: str) -> str:
    """An Idempotency-Key used as an id: itself when it fits an id column, else a stable
    digest of it (the same key, the same id, on every retry)."""
    if len(key) <= MAX_ID_LENGTH:
        return key
    return "idem:" + hashlib.sha256(key.encode()).hexdigest()


def _fingerprint() -> str:
    digest = hashlib.sha256()
    digest.update(request.method.encode())
    digest.update(request.path.encode())
    digest.update(request.get_data(cache=True))
    return digest.hexdigest()


def _replay(scope: str, key: str) -> Response | None:
    record = db.session.execute(
        db.select(IdempotencyRecord).where(IdempotencyRecord.scope == scope,
                                           IdempotencyRecord.key == key)
    ).scalar_one_or_none()
    if record is None:
        return None
    caller = g.get("client")
    if record.site and caller is not None:
        # The caller's sites may have been narrowed since: the first answer is theirs to
        # see again only while they may still use its site.
        require_site(caller, record.site)
    if record.fingerprint != _fingerprint():
        raise ApiError(422, "idempotency_key_reused",
                       "this Idempotency-Key was used for a different request",
                       {"Idempotency-Key": ["already used for another request"]})
    response = jsonify(record.body)
    response.status_code = record.status_code
    response.headers["Idempotent-Replayed"] = "true"
    return response


def respond(operation: Callable[[], tuple[int, dict]], scope: str | None = None) -> Response:
    """Run ``operation`` (which adds to the session and returns status and body), commit,
    answer. A repeat — by Idempotency-Key, or a concurrent duplicate that loses the race
    on a unique constraint — is answered with the first result and changes nothing."""
    key = idempotency_key()
    scope = scope or f"client:{g.client.id}"
    for attempt in (1, 2):
        if key:
            replayed = _replay(scope, key)
            if replayed is not None:
                return replayed
        try:
            # A concurrent duplicate may already fail inside the operation, at a flush.
            status, body = operation()
            if key:
                db.session.add(IdempotencyRecord(scope=scope, key=key,
                                                 fingerprint=_fingerprint(),
                                                 site=g.get("access_site"),
                                                 status_code=status, body=body))
            commit()
        except IntegrityError:
            db.session.rollback()
            if attempt == 2:
                raise
            continue
        response = jsonify(body)
        response.status_code = status
        return response
    raise AssertionError("unreachable")
