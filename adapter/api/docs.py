"""Documenting error answers on every route, in one place."""

from __future__ import annotations

from ..errors import CODES, ErrorSchema

DESCRIPTIONS = {
    400: "Malformed body or invalid fields (the errors name each field)",
    401: "Missing, wrong, expired or revoked credentials",
    403: "Not allowed for this site or role",
    404: "Unknown conversation, message or case",
    409: "The conversation is closed",
    413: "Body larger than the limit",
    415: "Body is not application/json",
    422: "Valid JSON but unusable (e.g. unroutable, Idempotency-Key reused)",
    429: "Rate limited (see Retry-After)",
    503: "A dependency is down: nothing was accepted (see Retry-After)",
}

WRITE = (400, 401, 403, 413, 415, 422, 429, 503)
READ = (401, 403, 404, 503)


def errors(blp, *statuses: int):
    """Decorator: document each status with the error schema."""

    def decorator(view):
        for status in sorted(set(statuses)):
            view = blp.alt_response(status, schema=ErrorSchema,
                                    description=DESCRIPTIONS.get(status, CODES.get(status)))(view)
        return view

    return decorator


#: The header every write that replays its first answer reads (``adapter.idempotency``).
IDEMPOTENCY_KEY = {
    "in": "header", "name": "Idempotency-Key", "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    "description": "Printable ASCII. A repeat with the same key (within the caller's "
                   "scope) changes nothing and gets the first answer; `X-Idempotency-Key` "
                   "is read too. Weni's mailroom retries a POST only when it carries one.",
}


def idempotent(blp):
    """Decorator: document the ``Idempotency-Key`` header on a write."""
    return blp.doc(parameters=[IDEMPOTENCY_KEY])
