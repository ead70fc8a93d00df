"""Bodies of the OpenCHS-compatible chat API, named as the seed's gateway named them."""

from __future__ import annotations

from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from ...api.fields import ID, TEXT

CLIENT_SOURCES = ("WENI",)
HELPLINE_SOURCES = ("OUTBOX", "HELPLINE")
SOURCES = CLIENT_SOURCES + HELPLINE_SOURCES


class TextOrNumber(fields.String):
    """An id Weni may send as a JSON number (the seed does) or a string; kept as text."""

    default_error_messages = {"invalid": "Not a valid string or integer."}

    def _deserialize(self, value: Any, attr, data, **kwargs) -> str:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        return super()._deserialize(value, attr, data, **kwargs)


def _id_field(description: str, *, max_length: int, required: bool = True,
              pattern: validate.Validator | None = None) -> TextOrNumber:
    validators = [validate.Length(min=1, max=max_length)]
    if pattern is not None:
        validators.append(pattern)
    return TextOrNumber(required=required, validate=validators, metadata={
        "description": description,
        "oneOf": [{"type": "string"}, {"type": "integer"}],
    })


class Source(fields.String):
    """``chat_source``: one of the seed's names, in any letter case."""

    def _deserialize(self, value: Any, attr, data, **kwargs) -> str:
        text = super()._deserialize(value, attr, data, **kwargs).strip().upper()
        if text not in SOURCES:
            raise ValidationError(f"Must be one of: {', '.join(SOURCES)}.")
        return text


class _Lenient(Schema):
    """The incumbent (Django REST framework) ignored unknown fields; so do we."""

    class Meta:
        unknown = EXCLUDE


class ChatTokenRequestSchema(_Lenient):
    username = fields.String(required=True, validate=validate.Length(min=1, max=120))
    password = fields.String(required=True, load_only=True,
                             validate=validate.Length(min=1, max=1024))


class ChatTokenSchema(Schema):
    token = fields.String(required=True, metadata={
        "description": "Send as `Authorization: Token <token>`"})
    expires_at = fields.DateTime(metadata={"description": "UTC; ask for a new token after"})


class ChatInSchema(_Lenient):
    chat_sender = _id_field(
        "WENI: the RapidPro contact uuid (counsellor replies go to this contact). "
        "OUTBOX/HELPLINE: the counsellor's pseudonym unless `counsellor` is sent",
        max_length=64)
    chat_receiver = _id_field("Accepted for compatibility; not used", max_length=200,
                              required=False)
    chat_message = fields.String(required=True, validate=[validate.Length(min=1), TEXT])
    chat_session = _id_field("The conversation id; a new one starts a conversation (WENI)",
                             max_length=200, pattern=ID)
    chat_source = Source(required=True, metadata={
        "description": "WENI: from the client (chatbot accounts); OUTBOX or HELPLINE: "
                       "from the counsellor (helpline accounts)",
        "enum": list(SOURCES)})
    message_id = fields.String(validate=ID, metadata={
        "description": "Optional sender's message id: the deduplication key when sent"})
    site = fields.String(validate=validate.Length(max=64), metadata={
        "description": "Site code for a new conversation (else `location`, else the "
                       "account's only site)"})
    location = fields.String(validate=validate.Length(max=120))
    counsellor = fields.String(validate=validate.Length(max=120), metadata={
        "description": "OUTBOX/HELPLINE: the counsellor's pseudonym"})


class ChatSentSchema(Schema):
    status = fields.String(metadata={"example": "success"})
    uuid = fields.String(metadata={"description": "Our id for the message"})
    chat_session = fields.String()


class ChatCloseSchema(_Lenient):
    chat_source = Source(metadata={
        "description": "Which side ends the chat; default: the caller's side",
        "enum": list(SOURCES)})


class ChatClosedSchema(Schema):
    status = fields.String(metadata={"example": "success"})
    chat_session = fields.String()
    closed_by = fields.String(allow_none=True, metadata={
        "description": "client, counsellor or timeout — whoever closed it first"})


class ChatQuerySchema(Schema):
    # Bounded: a page past 10 million is no page, and must not overflow the database.
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=10_000_000))
    page_size = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))


class ChatSchema(Schema):
    uuid = fields.String()
    chat_sender = fields.String(allow_none=True)
    chat_receiver = fields.String(allow_none=True)
    chat_message = fields.String(allow_none=True, metadata={
        "description": "null unless the account may read message text (or once purged)"})
    chat_session = fields.String()
    chat_source = fields.String(metadata={"enum": ["WENI", "HELPLINE"]})
    status = fields.String(metadata={"description": "accepted, sent, delivered, read, failed"})
    created_at = fields.DateTime()


class ChatPageSchema(Schema):
    count = fields.Integer()
    next = fields.String(allow_none=True)
    previous = fields.String(allow_none=True)
    results = fields.List(fields.Nested(ChatSchema))
