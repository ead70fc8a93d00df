"""One JSON error shape for every failure: ``{"code", "message", "errors"}``."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, jsonify
from marshmallow import Schema, fields
from sqlalchemy.exc import DBAPIError, OperationalError
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


def _field_errors(error: HTTPException) -> dict:
    """webargs puts validation messages under the location (``json``): lift them out."""
    data = getattr(error, "data", None) or {}
    messages = data.get("messages") or {}
    if set(messages) <= {"json", "query", "headers", "path", "view_args", "form"}:
        merged: dict = {}
        for value in messages.values():
            if isinstance(value, dict):
                merged.update(value)
        return merged
    return messages


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

    @app.errorhandler(OperationalError)
    @app.errorhandler(DBAPIError)
    def _database_down(error: Exception):
        log.error("database.unavailable", extra={"error_type": type(error).__name__})
        # Flask-SQLAlchemy's own handle: this module is below the extensions module.
        app.extensions["sqlalchemy"].session.rollback()
        err = unavailable(app.config)
        return error_response(err.status, err.code, err.message, headers=err.headers)

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException):
        return render_http_exception(error)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        log.exception("request.failed", extra={"error_type": type(error).__name__})
        return error_response(500, "internal_error", "internal error")
