"""The webhook helpline's callback route: ``POST /v1/sites/<site>/webhook/events/``.

Authentication is the Standard Webhooks signature, checked over the raw body before
anything is parsed: a missing, tampered or stale (±5 min) signature is a 401.
"""

from __future__ import annotations

from flask import request
from flask.views import MethodView
from marshmallow import Schema, ValidationError, fields, validate

from adapter.api.blueprint import Blueprint
from adapter.api.docs import errors
from adapter.api.fields import attachment_list, flatten_errors
from adapter.auth import unauthorized
from adapter.errors import ApiError
from adapter.idempotency import respond
from plugins.callbacks import ACK_STATUSES, apply_events, parse_events, site_of_kind

from . import signing
from .config import KIND
from .wire import CALLBACK_TYPES

blp = Blueprint("webhook_callbacks", __name__,
                description="Callbacks from a webhook helpline (per site, signed)")


#: Bounds from the columns each value is stored in or looked up by (adapter.models).
SESSION_ID = validate.Length(max=200)  # conversations.id / external_id
MESSAGE_ID = validate.Length(min=1, max=200)  # messages.sender_message_id
COUNSELLOR = validate.Length(max=120)  # conversations.counsellor, messages.sender


class _Ref(Schema):
    session_id = fields.String(load_default=None, validate=SESSION_ID,
                               metadata={"description": "Our session id"})
    recipient = fields.String(load_default=None, validate=validate.Length(max=255), metadata={
        "description": "The client address we sent as `from` (when no session_id)"})


class WebhookMessageData(_Ref):
    message_id = fields.String(required=True, validate=MESSAGE_ID)
    text = fields.String(load_default="", validate=validate.Length(max=10_000))
    counsellor = fields.String(load_default=None, validate=COUNSELLOR)
    attachments = attachment_list(load_default=list)


class WebhookAssignData(_Ref):
    counsellor = fields.String(load_default=None, validate=COUNSELLOR)


class WebhookAckData(_Ref):
    message_id = fields.String(required=True, validate=MESSAGE_ID)
    status = fields.String(load_default="delivered", validate=validate.OneOf(ACK_STATUSES))


class WebhookCloseData(_Ref):
    reason = fields.String(load_default=None, validate=validate.Length(max=32))
    counsellor = fields.String(load_default=None, validate=COUNSELLOR)


DATA_SCHEMAS: dict[str, type[Schema]] = {
    "message.created": WebhookMessageData,
    "conversation.assigned": WebhookAssignData,
    "message.acknowledged": WebhookAckData,
    "conversation.closed": WebhookCloseData,
}


class WebhookEventSchema(Schema):
    type = fields.String(required=True, validate=validate.OneOf(CALLBACK_TYPES))
    timestamp = fields.String(load_default=None, validate=validate.Length(max=64))
    data = fields.Dict(required=True, metadata={
        "description": "message.created: session_id|recipient, message_id, text, counsellor,"
                       " attachments; conversation.assigned: session_id, counsellor;"
                       " message.acknowledged: session_id, message_id, status;"
                       " conversation.closed: session_id, reason"})


class WebhookEventOutSchema(Schema):
    status = fields.String()
    conversation_id = fields.String()
    message_id = fields.String()


@blp.before_request
def _verify_signature() -> None:
    """Before the body is parsed: only the helpline holding a site secret gets further."""
    code = (request.view_args or {}).get("site", "")
    site = site_of_kind(code, KIND)
    try:
        signing.verify(site.helpline["callback_secrets"], request.get_data(cache=True),
                       request.headers)
    except signing.SignatureError:
        raise unauthorized("missing, invalid or expired webhook signature") from None


@blp.route("/events/")
class Events(MethodView):
    @blp.doc(description="Signed per Standard Webhooks: `webhook-id`, `webhook-timestamp`"
                         " (within 5 minutes), `webhook-signature` (`v1,<base64>`, several"
                         " during a key rotation). A bad or stale signature is a 401.")
    @blp.arguments(WebhookEventSchema)
    @blp.response(200, WebhookEventOutSchema, description="Applied (or a repeat: the first answer)")
    @blp.alt_response(201, schema=WebhookEventOutSchema, description="A new counsellor message")
    @errors(blp, 400, 401, 404, 409, 413, 415, 422, 503)
    def post(self, body, site):
        """A signed event from the helpline: a counsellor message, assignment, ack or close."""
        found = site_of_kind(site, KIND)
        event_type = body["type"]
        try:
            data = DATA_SCHEMAS[event_type]().load(body["data"])
        except ValidationError as exc:
            raise ApiError(400, "invalid_request", "invalid event data",
                           flatten_errors(exc.messages, "data")) from None
        if not data.get("session_id") and not data.get("recipient"):
            raise ApiError(400, "invalid_request", "name the conversation",
                           {"data.session_id": ["session_id or recipient is required"]})
        events = parse_events(found, event_type, data)
        return respond(lambda: apply_events(found, events, f"helpline:{found.code}"),
                       scope=f"site:{found.code}")
