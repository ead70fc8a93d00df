"""The HTTP API: flask-smorest blueprints, the JSON body guard, the OpenAPI document."""

from __future__ import annotations

from flask import Flask, request
from werkzeug.exceptions import BadRequest

from ..dialects import any_content_type_blueprints
from ..errors import ApiError, ErrorSchema
from ..extensions import api
from .fields import storable

BODY_METHODS = ("POST", "PUT", "PATCH")
#: Blueprints whose callers send JSON without saying so (a dialect says which): their
#: bodies are read as JSON anyway.
ANY_CONTENT_TYPE_BLUEPRINTS = any_content_type_blueprints()


def guard_json_body() -> None:
    """415 for a body that is not JSON, 400 for JSON we cannot read — before any view."""
    if request.method not in BODY_METHODS or request.path.startswith(("/_", "/console/")):
        return  # the sandbox's own routes; the console's HTML forms (adapter/console)
    if not request.content_length and not request.get_data(cache=True):
        return  # an empty body is an empty object
    lenient = request.blueprint in ANY_CONTENT_TYPE_BLUEPRINTS
    if not request.is_json and not lenient:
        raise ApiError(415, "unsupported_media_type", "send the body as application/json",
                       {"Content-Type": ["must be application/json"]})
    try:
        body = request.get_json(force=lenient)
    except (BadRequest, RecursionError, ValueError) as exc:
        if isinstance(exc, BadRequest) and exc.code == 413:
            raise
        raise ApiError(400, "malformed_json", "the body is not valid JSON",
                       {"body": ["not valid JSON"]}) from None
    if not isinstance(body, dict):
        raise ApiError(400, "malformed_json", "the body must be a JSON object",
                       {"body": ["must be a JSON object"]})


def guard_path_arguments() -> None:
    """A conversation, case or site id in the path with a character no column can hold
    (``%00``) names nothing that exists: 404, before it reaches a query the database
    would refuse."""
    for value in (request.view_args or {}).values():
        if isinstance(value, str) and not storable(value):
            raise ApiError(404, "not_found", "no such resource")


def init_app(app: Flask) -> None:
    from ..callbacks.routes import register_callback_routes
    from ..dialects import register_dialect_routes
    from . import health, media, metrics
    from .docs_ui import init_docs_assets

    api.ERROR_SCHEMA = ErrorSchema
    api.init_app(app, spec_kwargs={
        "info": {"description": "Hands a chatbot conversation to a child helpline counsellor."},
    })
    api.spec.components.security_scheme(
        "Token",
        {"type": "apiKey", "in": "header", "name": "Authorization",
         "description": "`Token <key>` (or `Bearer <key>`)"},
    )
    app.before_request(guard_path_arguments)
    app.before_request(guard_json_body)
    api.register_blueprint(health.blp)
    api.register_blueprint(metrics.blp)
    api.register_blueprint(media.blp)
    register_dialect_routes(api)
    init_docs_assets(app)
    register_callback_routes(app)
