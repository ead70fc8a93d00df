"""Request and response bodies of the conversation routes."""

from __future__ import annotations

from marshmallow import EXCLUDE, RAISE, Schema, fields, validate

from ...api.fields import ID, LANGUAGE, TEXT, attachment_list
from ...errors import ErrorSchema


class _Lenient(Schema):
    """RapidPro's own objects: keep what we use, ignore what a new version adds."""

    class Meta:
        unknown = EXCLUDE


class ContactSchema(_Lenient):
    uuid = fields.String(validate=validate.Length(max=64))
    name = fields.String(load_only=True, metadata={"description": "ignored: never stored"})
    urn = fields.String(validate=validate.Length(max=255))


class StartContactSchema(ContactSchema):
    """A start's contact: its language too (read on a start only; a message or a close
    is never refused over it)."""

    language = fields.String(validate=LANGUAGE, allow_none=True, metadata={
        "description": "The contact's language (ISO 639-3): the texts the child is sent. "
                       "Not in RapidPro's default body: add `\"language\": "
                       "\"@contact.language\"` to the contact object"})


class FlowSchema(_Lenient):
    uuid = fields.String(validate=validate.Length(max=64))
    name = fields.String()


class RunSchema(_Lenient):
    uuid = fields.String(validate=validate.Length(max=64))
    created_on = fields.String()


class InputSchema(_Lenient):
    uuid = fields.String(validate=validate.Length(max=64))
    type = fields.String()
    urn = fields.String(validate=validate.Length(max=255))
    text = fields.String(validate=TEXT, allow_none=True)
    attachments = attachment_list(allow_geo=True, keep_type=True, load_default=list)
    channel = fields.Dict()
    created_on = fields.String()


class RapidProBodySchema(Schema):
    """RapidPro's Call Webhook bodies: the default one and the resthook/legacy one."""

    class Meta:
        unknown = RAISE

    contact = fields.Nested(ContactSchema)
    flow = fields.Nested(FlowSchema)
    results = fields.Dict(keys=fields.String(), values=fields.Raw(allow_none=True),
                          metadata={"description": "{key: {value, category}}"})
    run = fields.Nested(RunSchema)
    input = fields.Nested(InputSchema, allow_none=True)
    path = fields.List(fields.Raw())
    channel = fields.Dict(allow_none=True)


class StartSchema(RapidProBodySchema):
    contact = fields.Nested(StartContactSchema)
    conversation_id = fields.String(validate=ID, metadata={
        "description": "The chatbot's id; derived (run uuid, Idempotency-Key) when absent"})
    message_id = fields.String(validate=ID)
    site = fields.String(validate=validate.Length(max=64))
    location = fields.String(validate=validate.Length(max=120))
    risk = fields.String(validate=validate.Length(max=64))
    language = fields.String(validate=LANGUAGE, allow_none=True, metadata={
        "description": "The child's language (ISO 639-3); wins over `contact.language`"})
    text = fields.String(validate=TEXT)
    attachments = attachment_list(allow_geo=True, keep_type=True)
    # Checked after routing, not here: an unusable intake must not stop an escalation.
    intake = fields.Dict(metadata={
        "description": "Open a helpline case with the conversation (fields as in "
                       "/v1/cases; intake results open one too). If it is unusable, the "
                       "conversation still starts and the answer carries intake_errors"})


class MessageInSchema(RapidProBodySchema):
    message_id = fields.String(validate=ID)
    text = fields.String(validate=TEXT)
    attachments = attachment_list(allow_geo=True, keep_type=True)


CLOSE_REASONS = ("resolved", "abandoned", "transferred", "expired", "cancelled", "other")


class CloseSchema(RapidProBodySchema):
    reason = fields.String(validate=validate.OneOf(CLOSE_REASONS))


class AckSchema(Schema):
    class Meta:
        unknown = RAISE

    message_id = fields.String(required=True, validate=ID)
    status = fields.String(required=True, validate=validate.OneOf(("delivered", "read", "failed")))


class ConversationQuerySchema(Schema):
    include_text = fields.Boolean(load_default=False, metadata={
        "description": "Include message text (clients allowed to read text only)"})


class MessageOutSchema(Schema):
    message_id = fields.String(attribute="id")
    sender_message_id = fields.String()
    direction = fields.String()
    sender = fields.String(allow_none=True)
    status = fields.String()
    failure_reason = fields.String(allow_none=True)
    created_at = fields.DateTime()
    sent_at = fields.DateTime(allow_none=True)
    delivered_at = fields.DateTime(allow_none=True)
    text = fields.String(allow_none=True)
    attachments = fields.List(fields.String(), allow_none=True)


class ConversationOutSchema(Schema):
    conversation_id = fields.String(attribute="external_id")
    id = fields.String()
    site = fields.String()
    state = fields.String()
    counsellor = fields.String(allow_none=True)
    client = fields.String(attribute="client_pseudonym")
    closed_by = fields.String(allow_none=True)
    close_reason = fields.String(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    assigned_at = fields.DateTime(allow_none=True)
    closed_at = fields.DateTime(allow_none=True)
    no_counsellor_at = fields.DateTime(allow_none=True)
    reopen_count = fields.Integer(metadata={
        "description": "How many times the child came back after a close, within the "
                       "site's `reopen_within` (docs/conversation.md)"})
    reopened_at = fields.DateTime(allow_none=True)
    previous_id = fields.String(allow_none=True, metadata={
        "description": "The conversation this one follows (our id), where the helpline "
                       "could not reopen the earlier one"})
    language = fields.String(allow_none=True, metadata={
        "description": "The child's language (ISO 639-3) as the start gave it, or null"})
    case_id = fields.String(dump_only=True, metadata={
        "description": "Start only: the case opened with the conversation, if any"})
    site_problem = fields.String(dump_only=True, metadata={
        "description": "Start only, when the site cannot be delivered to as configured "
                       "(e.g. `site config incomplete: helpline.password unset`): the "
                       "conversation is kept, `requested`, and reaches the helpline once "
                       "the site is fixed"})
    after_hours = fields.Dict(dump_only=True, metadata={
        "description": "Start only, when the site was closed ([hours]): `{next_opening` "
                       "(ISO 8601 UTC, null if none is ahead), `next_opening_local` (with "
                       "the site's offset), `timezone`, `held}`; held: kept `requested` "
                       "until the opening, else closed (`closed_by: after_hours`). The "
                       "chatbot also hears the `after_hours` event"})
    intake_errors = fields.Dict(dump_only=True, metadata={
        "description": "Start only: why the intake opened no case ({code, errors}); the "
                       "conversation is started all the same"})
    attachment_errors = fields.Dict(
        keys=fields.String(), values=fields.List(fields.String()), dump_only=True, metadata={
            "description": "Start only: the attachments of the first message the site "
                           "refused ([attachments] limits), by field (`attachments.1`: "
                           "why); the conversation, the text and the other attachments "
                           "are accepted all the same"})


class ConversationDetailSchema(ConversationOutSchema):
    messages = fields.List(fields.Nested(MessageOutSchema))


class MessageAcceptedSchema(Schema):
    conversation_id = fields.String()
    message_id = fields.String(attribute="id")
    sender_message_id = fields.String()
    status = fields.String()


class AttachmentsRefusedSchema(ErrorSchema):
    """The 422 for a message some of whose attachments the site refuses: the rest of the
    message was accepted (``accepted``), and is on its way."""

    accepted = fields.Nested(MessageAcceptedSchema, allow_none=True, metadata={
        "description": "The message as accepted without the refused attachments (its text "
                       "and the attachments the site takes); null when nothing was left"})


class CloseOutSchema(ConversationOutSchema):
    pass


class AckOutSchema(Schema):
    message_id = fields.String(attribute="id")
    status = fields.String()
