"""One JSON error shape for every failure: ``{"code", "message", "errors"}``.

A database failure is a 503 with ``Retry-After`` only when the database cannot serve
now (no connection, a timeout, a lock, a read-only failover): trying again later may
succeed. A failure the request itself caused (a value too long for its column, a
character it cannot store) would fail the same way for ever, so telling the caller to
retry would have it retry for ever: that is our bug, answered 500 and logged, ids only.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, current_app, g, jsonify
from marshmallow import Schema, fields
from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "unprocessable",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


class ErrorSchema(Schema):
    code = fields.String(required=True, metadata={"description": "Machine-readable error code"})
    message = fields.String(required=True)
    errors = fields.Dict(
        keys=fields.String(),
        values=fields.Raw(),
        metadata={"description": "Field name → list of problems with that field"},
    )


class ApiError(Exception):
    """An error answered to the client as JSON."""

    def __init__(
        self,
        status: int,
        code: str | None = None,
        message: str | None = None,
        errors: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message or code)
        self.status = status
        self.code = code or CODES.get(status, "error")
        self.message = message or self.code.replace("_", " ")
        self.errors = errors or {}
        self.headers = headers or {}


def error_response(status: int, code: str, message: str, errors=None, headers=None):
    body = {"code": code, "message": message, "errors": errors or {}}
    response = jsonify(body)
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def unavailable(app_config) -> ApiError:
    return ApiError(
        503,
        "unavailable",
        "a dependency is down; nothing was accepted, try again",
        headers={"Retry-After": str(app_config["RETRY_AFTER_SECONDS"])},
    )


#: SQLSTATE classes that say the server cannot serve now: connection exception,
#: insufficient resources, operator intervention (shutdown, statement timeout), system error.
UNAVAILABLE_SQLSTATE_CLASSES = frozenset({"08", "53", "57", "58"})
#: And single states: a read-only transaction (a standby after failover), an idle or
#: transaction timeout, a serialization failure or deadlock, a lock not available.
UNAVAILABLE_SQLSTATES = frozenset({"25006", "25P03", "25P04", "40001", "40P01", "55P03"})
#: Classes that say the request is wrong, whatever exception class the driver chose:
#: data exception, integrity violation, syntax or access rule, program limit exceeded.
REQUEST_SQLSTATE_CLASSES = frozenset({"22", "23", "42", "54"})


def _sqlstate(error: DBAPIError) -> str | None:
    orig = getattr(error, "orig", None)
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return state if isinstance(state, str) and len(state) == 5 else None


def database_unavailable(error: BaseException) -> bool:
    """Whether a database error means "down, try again later" (503) rather than a bug."""
    if isinstance(error, DisconnectionError | PoolTimeoutError):
        return True
    if not isinstance(error, DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    state = _sqlstate(error)
    if state is not None:
        if state in UNAVAILABLE_SQLSTATES or state[:2] in UNAVAILABLE_SQLSTATE_CLASSES:
            return True
        if state[:2] in REQUEST_SQLSTATE_CLASSES:
            return False
    # SQLite's "database is locked", "unable to open database file"; a driver's lost
    # connection without a SQLSTATE.
    return isinstance(error, OperationalError | InterfaceError)


def _rollback() -> None:
    try:
        # Flask-SQLAlchemy's own handle: this module is below the extensions module.
        current_app.extensions["sqlalchemy"].session.rollback()
    except Exception:  # the connection is gone: the session is discarded at teardown
        log.warning("database.rollback_failed")


def _field_errors(error: HTTPException) -> dict:
    """webargs puts validation messages under the location (``json``): lift them out, as
    dotted paths (``contact.urn``, ``attachments.0``) like every other error names fields."""
    from .api.fields import flatten_errors

    data = getattr(error, "data", None) or {}
    messages = data.get("messages") or {}
    if set(messages) <= {"json", "query", "headers", "path", "view_args", "form"}:
        merged: dict = {}
        for value in messages.values():
            if isinstance(value, dict):
                merged.update(value)
        return flatten_errors(merged)
    return flatten_errors(messages)


def render_http_exception(error: HTTPException):
    status = error.code or 500
    if status in (400, 422) and "messages" in (getattr(error, "data", None) or {}):
        # Schema validation (webargs): the request is malformed for this route.
        errors = _field_errors(error)
        fields_named = ", ".join(sorted(errors)) or "body"
        return error_response(
            400, "invalid_request", f"invalid fields: {fields_named}", errors
        )
    code = CODES.get(status, "error")
    message = error.description if status < 500 else code.replace("_", " ")
    headers = {}
    valid_methods = getattr(error, "valid_methods", None)
    if status == 405 and valid_methods:
        headers["Allow"] = ", ".join(valid_methods)
    return error_response(status, code, message or code, headers=headers)


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(error: ApiError):
        return error_response(error.status, error.code, error.message, error.errors, error.headers)

    @app.errorhandler(SQLAlchemyError)
    def _database_error(error: SQLAlchemyError):
        _rollback()
        if database_unavailable(error):
            log.error("database.unavailable", extra={"error_type": type(error).__name__})
            err = unavailable(app.config)
            return error_response(err.status, err.code, err.message, headers=err.headers)
        # What reached the database should never have: a validation is missing. The
        # type, SQLSTATE and stack say where; the message (it may quote data) stays out.
        log.error("database.refused_request", extra={
            "error_type": type(error).__name__,
            "reason": _sqlstate(error) if isinstance(error, DBAPIError) else None,
            "request_id": g.get("request_id")}, exc_info=error)
        return error_response(500, "internal_error", "internal error")

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException):
        return render_http_exception(error)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        # A UnicodeEncodeError or ValueError from the driver lands here too: a 500, and
        # the session is rolled back like after any database error.
        _rollback()
        log.exception("request.failed", extra={"error_type": type(error).__name__,
                                                "request_id": g.get("request_id")})
        return error_response(500, "internal_error", "internal error")
