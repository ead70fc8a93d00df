"""The OpenCHS callbacks, mounted by the core per site at ``/v1/sites/<site>/openchs/``.

What the helpline calls (``reference/openchs.md``): a token login with the site's
callback credentials (``token/``, served by the core), counsellor replies
``{recipient, message_type, content}`` (with ``session_id``, ``message_id`` and
``counsellor`` when it sends them), and ``chat/<session_id>/close/``. ``assign/`` and
``ack/`` are what the seed asks OpenCHS to add; the sandbox helpline sends them.
"""

from __future__ import annotations

from marshmallow import (
    EXCLUDE,
    Schema,
    ValidationError,
    fields,
    post_load,
    validate,
    validates_schema,
)

from plugins.api import ACK_STATUSES, ATTACHMENT_MAX_LENGTH, Callback, TokenLogin, parse_attachment

from .wire import MEDIA_TYPES


class _Lenient(Schema):
    """The helpline is not ours: fields it adds later must not make us drop a reply."""

    class Meta:
        unknown = EXCLUDE


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

    @validates_schema
    def _names_the_conversation(self, data: dict, **_kwargs) -> None:
        if not data.get("session_id") and not data.get("recipient"):
            raise ValidationError({"recipient": ["recipient or session_id is required"]})

    @post_load
    def _media_is_a_web_link(self, data: dict, **_kwargs) -> dict:
        """Media content reaches the client as an attachment: an http(s) link only."""
        if (data.get("message_type") or "text") in MEDIA_TYPES and data.get("content"):
            try:
                data["content"] = parse_attachment(data["content"].strip(), allow_geo=False,
                                                   keep_type=True)
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


LOGIN = TokenLogin()  # username, password and ttl: the site's callback_* keys

CALLBACKS = (
    Callback("message", "message/", OpenCHSCounsellorMessageSchema,
             "A counsellor reply, mapped by `session_id`, else by `recipient`."),
    Callback("close", "chat/<path:session_id>/close/", OpenCHSCloseSchema,
             'The counsellor ended the chat (`{"chat_source": "HELPLINE"}`).'),
    Callback("assign", "assign/", OpenCHSAssignSchema, "A counsellor took the chat."),
    Callback("ack", "ack/", OpenCHSAckSchema,
             "The helpline acknowledges a client message (delivered, read or failed)."),
)
