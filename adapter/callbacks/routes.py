"""Mounting every kind's callbacks at ``/v1/sites/<site>/<kind>/<path>``.

One blueprint per kind that declares callbacks, one route per :class:`Callback`. The
core does what every callback needs: find the site (404 for a site of another kind),
authenticate before the body is read (an unauthenticated caller learns nothing from a
400), validate the body (400 naming each field), ask the kind what it means, apply it
with idempotency, answer.
"""

from __future__ import annotations

from flask import Flask, request

from plugins.types import Callback, HelplineKind

from ..api.blueprint import Blueprint
from ..api.docs import errors, idempotent
from ..errors import ApiError
from ..extensions import api
from ..idempotency import respond
from ..sites import Site
from ..state import state_of
from .applying import apply_events, events_of
from .login import TokenLoginInSchema, TokenLoginOutSchema, authenticate, log_in
from .schemas import CallbackAnswerSchema

CALLBACK_ERRORS = (400, 401, 404, 409, 413, 415, 422, 503)
SECURITY = [{"Token": []}]


def site_of_kind(code: str, kind: HelplineKind) -> Site:
    """The site a callback URL names; 404 if unknown or served by another kind."""
    site = state_of().sites.get(code)
    if site is None or site.plugin != kind.name:
        raise ApiError(404, "site_not_found", f"no {kind.name} site {code!r}")
    return site


def register_callback_routes(app: Flask) -> None:
    for kind in state_of(app).kinds.values():
        if kind.callbacks:
            api.register_blueprint(kind_blueprint(kind),
                                   url_prefix=f"/v1/sites/<site>/{kind.name}")


def kind_blueprint(kind: HelplineKind) -> Blueprint:
    blp = Blueprint(f"{kind.name}_callbacks", __name__,
                    description=f"Callbacks from a {kind.name} helpline (per site)"
                                + (f": {kind.description}" if kind.description else ""))
    login_endpoint = f"{blp.name}.token_login"

    @blp.before_request
    def _authenticate() -> None:
        if request.view_args is None or request.endpoint == login_endpoint:
            return
        authenticate(site_of_kind(request.view_args.get("site", ""), kind), kind)

    if kind.token_login is not None:
        _add_token_login(blp, kind)
    for callback in kind.callbacks:
        _add_callback(blp, kind, callback)
    return blp


def _add_token_login(blp: Blueprint, kind: HelplineKind) -> None:
    login = kind.token_login
    assert login is not None

    @blp.route(f"/{login.path}", methods=["POST"], endpoint="token_login")
    @blp.arguments(TokenLoginInSchema)
    @blp.response(200, TokenLoginOutSchema, description="A time-bound callback token")
    @errors(blp, 400, 401, 404, 415, 429)
    def token_login(body, site):
        """Log in as the site's helpline: its callback username and password → a token.

        Failed logins are limited per site and per address: past a limit, `429
        too_many_logins` with `Retry-After`, even for the right password.
        """
        found = site_of_kind(site, kind)
        return {"token": log_in(found, login, body["username"], body["password"])}


def _add_callback(blp: Blueprint, kind: HelplineKind, callback: Callback) -> None:
    def view(body, site, **path_args):
        found = site_of_kind(site, kind)
        events = events_of(found, kind, callback.action, {**body, **path_args})
        return respond(lambda: apply_events(found, kind, events), scope=f"site:{found.code}")

    view.__name__ = f"callback_{callback.action}"
    view.__doc__ = callback.summary + (f"\n\n{callback.description}"
                                       if callback.description else "")
    decorated = errors(blp, *CALLBACK_ERRORS)(view)
    decorated = blp.alt_response(201, schema=CallbackAnswerSchema,
                                 description="A new counsellor message")(decorated)
    decorated = blp.response(200, CallbackAnswerSchema,
                             description="Applied (or a repeat: the first answer)")(decorated)
    decorated = blp.arguments(callback.schema)(decorated)
    decorated = idempotent(blp)(decorated)
    if kind.token_login is not None:
        decorated = blp.doc(security=SECURITY)(decorated)
    blp.route(f"/{callback.path}", methods=["POST"],
              endpoint=f"callback_{callback.action}")(decorated)
