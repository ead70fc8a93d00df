"""Callback authentication the core runs before a callback's body is read: a kind's own
``authenticate`` (a signature over the raw body, say), or a token login it declares
(:class:`plugins.types.TokenLogin`), served here."""

from __future__ import annotations

import hmac

from flask import request
from marshmallow import EXCLUDE, Schema, fields, validate

from plugins.types import CallbackRefused, CallbackRequest, HelplineKind, TokenLogin

from .. import login_limits
from ..auth import credential_from_header, issue_token, site_token_valid, unauthorized
from ..sites import Site
from ..transactions import commit
from ..views import site_view


class TokenLoginInSchema(Schema):
    class Meta:
        unknown = EXCLUDE  # the helpline is not ours: a field it adds must not lock it out

    username = fields.String(required=True, validate=validate.Length(max=255))
    password = fields.String(required=True, validate=validate.Length(max=1024))


class TokenLoginOutSchema(Schema):
    token = fields.String(required=True)


def authenticate(site: Site, kind: HelplineKind) -> None:
    """Refuse (401) a callback that does not prove it comes from ``site``'s helpline."""
    if kind.token_login is not None:
        if not site_token_valid(site.code, credential_from_header()):
            raise unauthorized()
        return
    assert kind.authenticate is not None  # HelplineKind insists on one of the two
    call = CallbackRequest(body=request.get_data(cache=True), headers=request.headers)
    try:
        kind.authenticate(site_view(site), call)
    except CallbackRefused as refused:
        raise unauthorized(str(refused) or "missing or invalid credentials") from None


def log_in(site: Site, login: TokenLogin, username: str, password: str) -> str:
    """A callback token for the site's helpline, for the right username and password.

    Failed logins are limited per site and per address (``429 too_many_logins``)."""
    with login_limits.attempt("site", site.code, log_account=True) as attempt:
        expected_user = str(site.helpline.get(login.username_key) or "")
        expected_password = str(site.helpline.get(login.password_key) or "")
        user_ok = hmac.compare_digest(username.encode(), expected_user.encode())
        password_ok = hmac.compare_digest(password.encode(), expected_password.encode())
        if not (expected_user and expected_password and user_ok and password_ok):
            attempt.failed()
            raise unauthorized("wrong callback username or password")
        token = issue_token(site=site.code, ttl=int(site.helpline[login.ttl_key]))
        commit()
    return token
