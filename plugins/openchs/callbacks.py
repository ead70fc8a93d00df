"""The adapter's OpenCHS callback routes, mounted per site at ``/v1/sites/<site>/openchs/``.

What the helpline calls (``reference/openchs.md``): a token login with the site's
callback credentials, counsellor replies ``{recipient, message_type, content}`` (with
``session_id``, ``message_id`` and ``counsellor`` when it sends them), and
``chat/<session_id>/close/``. ``assign/`` and ``ack/`` are what the seed asks OpenCHS
to add; the sandbox helpline sends them.
"""

from __future__ import annotations

import hmac

from flask import request
from flask.views import MethodView
from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, validate

from adapter import login_limits
from adapter.api.blueprint import Blueprint
from adapter.api.docs import errors
from adapter.api.fields import ATTACHMENT_MAX_LENGTH, parse_attachment
from adapter.auth import credential_from_header, issue_token, site_token_valid, unauthorized
from adapter.errors import ApiError
from adapter.idempotency import respond
from adapter.sites import Site
from adapter.transactions import commit
from plugins.callbacks import ACK_STATUSES, apply_events, parse_events, site_of_kind

from .config import KIND
from .wire import MEDIA_TYPES

blp = Blueprint("openchs_callbacks", __name__,
                description="Callbacks from an OpenCHS helpline (per site)")
SECURITY = [{"Token": []}]
CALLBACK_ERRORS = (400, 401, 404, 409, 413, 415, 422, 503)


class _Lenient(Schema):
    """The helpline is not ours: fields it adds later must not make us drop a reply."""

    class Meta:
        unknown = EXCLUDE


class OpenCHSTokenInSchema(_Lenient):
    username = fields.String(required=True, validate=validate.Length(max=255))
    password = fields.String(required=True, validate=validate.Length(max=1024))


class OpenCHSTokenOutSchema(Schema):
    token = fields.String(required=True)


#: Bounds from the columns each value is stored in or looked up by (adapter.models).
SESSION_ID = validate.Length(max=200)  # conversations.id / external_id
MESSAGE_ID = validate.Length(max=200)  # messages.sender_message_id
COUNSELLOR = validate.Length(max=120)  # conversations.counsellor, messages.sender
RECIPIENT = validate.Length(max=255)  # a pseudonym, contact uuid or URN
TEXT = validate.Length(max=10_000)


class OpenCHSCounsellorMessageSchema(_Lenient):
    recipient = fields.String(load_default=None, validate=RECIPIENT, metadata={
        "description": "The client address we sent as `from`"})
    message_type = fields.String(load_default="text", validate=validate.Length(max=32))
    content = fields.String(required=True, validate=TEXT, metadata={
        "description": "The text; for a media `message_type` (image, audio, video, document, "
                       "file, voice) an http(s) URL (or `<content-type>:<url>`) of at most "
                       f"{ATTACHMENT_MAX_LENGTH} characters"})
    session_id = fields.String(load_default=None, validate=SESSION_ID)
    message_id = fields.String(load_default=None, validate=MESSAGE_ID)
    counsellor = fields.String(load_default=None, validate=COUNSELLOR)
    agent = fields.String(load_default=None, validate=COUNSELLOR)

    @post_load
    def _media_is_a_web_link(self, data: dict, **_kwargs) -> dict:
        """Media content reaches the client as an attachment: an http(s) link only."""
        if (data.get("message_type") or "text") in MEDIA_TYPES and data.get("content"):
            try:
                data["content"] = parse_attachment(data["content"].strip(), allow_geo=False)
            except ValidationError as exc:
                raise ValidationError({"content": exc.messages}) from None
        return data


class OpenCHSCloseSchema(_Lenient):
    chat_source = fields.String(load_default="HELPLINE", validate=validate.Length(max=32))
    reason = fields.String(load_default=None, validate=validate.Length(max=32))


class OpenCHSAssignSchema(_Lenient):
    session_id = fields.String(required=True, validate=SESSION_ID)
    counsellor = fields.String(load_default=None, validate=COUNSELLOR)


class OpenCHSAckSchema(_Lenient):
    session_id = fields.String(required=True, validate=SESSION_ID)
    message_id = fields.String(required=True, validate=MESSAGE_ID)
    status = fields.String(load_default="delivered", validate=validate.OneOf(ACK_STATUSES))


class OpenCHSCallbackOutSchema(Schema):
    status = fields.String()
    conversation_id = fields.String()
    message_id = fields.String()


def _authenticated_site(code: str) -> Site:
    site = site_of_kind(code, KIND)
    if not site_token_valid(site.code, credential_from_header()):
        raise unauthorized()
    return site


@blp.before_request
def _authenticate() -> None:
    """Before the body is parsed: an unauthenticated caller learns nothing from a 400."""
    if request.endpoint != f"{blp.name}.CallbackToken" and request.view_args is not None:
        _authenticated_site(request.view_args.get("site", ""))


def _handle(code: str, action: str, payload: dict):
    site = site_of_kind(code, KIND)
    events = parse_events(site, action, payload)
    return respond(lambda: apply_events(site, events, f"helpline:{site.code}"),
                   scope=f"site:{site.code}")


@blp.route("/token/")
class CallbackToken(MethodView):
    @blp.arguments(OpenCHSTokenInSchema)
    @blp.response(200, OpenCHSTokenOutSchema, description="A time-bound callback token")
    @errors(blp, 400, 401, 404, 415, 429)
    def post(self, body, site):
        """Log in as the site's helpline: its callback username and password → a token.

        Failed logins are limited per site and per address: past a limit, `429
        too_many_logins` with `Retry-After`, even for the right password.
        """
        found = site_of_kind(site, KIND)
        with login_limits.attempt("site", found.code, log_account=True) as attempt:
            expected_user = found.helpline.get("callback_username") or ""
            expected_password = found.helpline.get("callback_password") or ""
            user_ok = hmac.compare_digest(body["username"].encode(), expected_user.encode())
            password_ok = hmac.compare_digest(body["password"].encode(),
                                              expected_password.encode())
            if not (expected_user and expected_password and user_ok and password_ok):
                attempt.failed()
                raise unauthorized("wrong callback username or password")
            token = issue_token(site=found.code, ttl=found.helpline["callback_token_ttl"])
            commit()
        return {"token": token}


@blp.route("/message/")
class CounsellorReply(MethodView):
    @blp.doc(security=SECURITY)
    @blp.arguments(OpenCHSCounsellorMessageSchema)
    @blp.response(201, OpenCHSCallbackOutSchema, description="Accepted, on its way to the client")
    @blp.alt_response(200, schema=OpenCHSCallbackOutSchema,
                      description="A repeat: the first answer")
    @errors(blp, *CALLBACK_ERRORS)
    def post(self, body, site):
        """A counsellor reply, mapped by `session_id`, else by `recipient`."""
        if not body.get("session_id") and not body.get("recipient"):
            raise ApiError(400, "invalid_request", "name the conversation",
                           {"recipient": ["recipient or session_id is required"]})
        return _handle(site, "message", body)


@blp.route("/chat/<path:session_id>/close/")
class CloseChat(MethodView):
    @blp.doc(security=SECURITY)
    @blp.arguments(OpenCHSCloseSchema)
    @blp.response(200, OpenCHSCallbackOutSchema, description="Closed (or already closed)")
    @errors(blp, *CALLBACK_ERRORS)
    def post(self, body, site, session_id):
        """The counsellor ended the chat (`{"chat_source": "HELPLINE"}`)."""
        return _handle(site, "close", {**body, "session_id": session_id})


@blp.route("/assign/")
class Assign(MethodView):
    @blp.doc(security=SECURITY)
    @blp.arguments(OpenCHSAssignSchema)
    @blp.response(200, OpenCHSCallbackOutSchema, description="Assigned (or unchanged)")
    @errors(blp, *CALLBACK_ERRORS)
    def post(self, body, site):
        """A counsellor took the chat."""
        return _handle(site, "assign", body)


@blp.route("/ack/")
class Acknowledge(MethodView):
    @blp.doc(security=SECURITY)
    @blp.arguments(OpenCHSAckSchema)
    @blp.response(200, OpenCHSCallbackOutSchema, description="Recorded")
    @errors(blp, *CALLBACK_ERRORS)
    def post(self, body, site):
        """The helpline acknowledges a client message (delivered, read or failed)."""
        return _handle(site, "ack", body)
