"""The webhook helpline's callback, mounted by the core: ``POST /v1/sites/<site>/webhook/events/``.

Authentication is the Standard Webhooks signature, checked by :func:`authenticate` over
the raw body before anything is parsed: a missing, tampered or stale (±5 min)
signature is a 401.
"""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, post_load, validate

from plugins.api import (
    ACK_STATUSES,
    Callback,
    CallbackRefused,
    CallbackRequest,
    SiteView,
    attachment_list,
)

from . import signing
from .wire import CALLBACK_TYPES

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
    attachments = attachment_list(keep_type=True, load_default=list)


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

    @post_load
    def _data_of_its_type(self, event: dict, **_kwargs) -> dict:
        """``data`` checked by the schema of the event's ``type`` (errors: ``data.<key>``)."""
        try:
            data = DATA_SCHEMAS[event["type"]]().load(event["data"])
        except ValidationError as exc:
            raise ValidationError({"data": exc.messages}) from None
        if not data.get("session_id") and not data.get("recipient"):
            raise ValidationError({"data": {"session_id": [
                "session_id or recipient is required"]}})
        return {**event, "data": data}


def authenticate(site: SiteView, call: CallbackRequest) -> None:
    try:
        signing.verify(site.helpline["callback_secrets"], call.body, call.headers)
    except signing.SignatureError:
        raise CallbackRefused("missing, invalid or expired webhook signature") from None


CALLBACKS = (
    Callback("events", "events/", WebhookEventSchema,
             "A signed event from the helpline: a counsellor message, assignment, ack or close.",
             "Signed per Standard Webhooks: `webhook-id`, `webhook-timestamp` (within 5"
             " minutes), `webhook-signature` (`v1,<base64>`, several during a key"
             " rotation). A bad or stale signature is a 401."),
)
