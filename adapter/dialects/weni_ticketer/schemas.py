"""Request and response bodies of the generic ticketer contract (``/v1/tickets``).

Field lists as Weni mailroom sends them (``services/tickets/generic``; see
``docs/weni-ticketer.md``). The top level is strict; mailroom's nested objects keep what
we use and ignore what a new version adds. Names, URNs and assignees are read for
routing at most and never stored.
"""

from __future__ import annotations

from marshmallow import EXCLUDE, RAISE, Schema, fields, validate

from ...api.fields import ID, LANGUAGE, TEXT

CLOSED_BY_TYPES = ("platform", "agent", "contact", "flow", "system")
CLOSE_REASONS = ("resolved", "abandoned", "transferred", "expired", "cancelled", "other")
#: One timestamp as Go marshals it (RFC 3339, up to nanoseconds): read by wire.instant.
TIMESTAMP = validate.Length(max=64)
MAX_HISTORY = 500  # messages in one history request (mailroom batches 50 by default)


class _Lenient(Schema):
    class Meta:
        unknown = EXCLUDE


class _Strict(Schema):
    class Meta:
        unknown = RAISE


class TicketTopicSchema(_Lenient):
    uuid = fields.String(validate=validate.Length(max=64), allow_none=True)
    name = fields.String(allow_none=True)
    queue_uuid = fields.String(validate=validate.Length(max=64), allow_none=True)


class TicketContactSchema(_Lenient):
    uuid = fields.String(validate=validate.Length(max=64), allow_none=True)
    name = fields.String(load_only=True, allow_none=True,
                         metadata={"description": "ignored: never stored"})
    urn = fields.String(validate=validate.Length(max=255), allow_none=True,
                        metadata={"description": "routing only (URN prefix); never stored "
                                                 "when the contact has a uuid"})
    urns = fields.List(fields.String(), load_only=True, allow_none=True,
                       metadata={"description": "ignored: never stored"})
    language = fields.String(allow_none=True)
    fields_ = fields.Dict(data_key="fields", allow_none=True,
                          metadata={"description": "contact fields; `location` routes"})


class TicketOpenContactSchema(TicketContactSchema):
    """An open's contact: its language is checked (a history is never refused over it)."""

    language = fields.String(validate=LANGUAGE, allow_none=True, metadata={
        "description": "the contact's language (ISO 639-3): the system texts the child "
                       "is sent"})


class TicketAssigneeSchema(_Lenient):
    email = fields.String(load_only=True, allow_none=True)
    name = fields.String(load_only=True, allow_none=True)


class TicketOpenMetadataSchema(_Lenient):
    project_uuid = fields.String(allow_none=True)
    project_name = fields.String(allow_none=True)
    flow = fields.Dict(allow_none=True)
    channel = fields.Dict(allow_none=True)
    webhook_base_url = fields.Url(relative=False, require_tld=False,
                                  schemes={"http", "https"}, allow_none=True,
                                  validate=validate.Length(max=2048),
                                  metadata={"description": "where our callbacks go"})
    location = fields.String(validate=validate.Length(max=120), allow_none=True)
    site = fields.String(validate=validate.Length(max=64), allow_none=True)
    language = fields.String(validate=LANGUAGE, allow_none=True, metadata={
        "description": "the child's language (ISO 639-3), when the contact has none"})


class TicketOpenSchema(_Strict):
    ticket_id = fields.String(required=True, validate=ID)
    topic = fields.Nested(TicketTopicSchema, allow_none=True)
    contact = fields.Nested(TicketOpenContactSchema, required=True)
    body = fields.String(validate=TEXT, allow_none=True)
    assignee = fields.Nested(TicketAssigneeSchema, allow_none=True)
    metadata = fields.Nested(TicketOpenMetadataSchema, allow_none=True)
    opened_at = fields.String(validate=TIMESTAMP, allow_none=True)


class TicketSenderSchema(_Lenient):
    type = fields.String(allow_none=True)
    id = fields.String(allow_none=True)
    name = fields.String(load_only=True, allow_none=True,
                         metadata={"description": "ignored: never stored"})
    email = fields.String(load_only=True, allow_none=True)


class TicketAttachmentSchema(_Lenient):
    url = fields.String(required=True, validate=validate.Length(max=2048))
    content_type = fields.String(allow_none=True)


class TicketMessageSchema(_Strict):
    ticket_id = fields.String(validate=ID, allow_none=True)
    external_id = fields.String(allow_none=True)
    message_id = fields.String(validate=ID, allow_none=True)
    direction = fields.String(validate=validate.OneOf(("incoming", "outgoing")),
                              load_default="incoming", metadata={
                                  "description": "`incoming`: the child; `outgoing` (history "
                                                 "sent one by one): the bot"})
    sender = fields.Nested(TicketSenderSchema, allow_none=True)
    text = fields.String(validate=TEXT, allow_none=True)
    attachments = fields.List(fields.Nested(TicketAttachmentSchema), allow_none=True,
                              validate=validate.Length(max=10))
    metadata = fields.Dict(allow_none=True)
    sent_at = fields.String(validate=TIMESTAMP, allow_none=True)


class TicketActorSchema(_Lenient):
    type = fields.String(allow_none=True)
    id = fields.String(allow_none=True)
    name = fields.String(load_only=True, allow_none=True)
    email = fields.String(load_only=True, allow_none=True)


class TicketCloseSchema(_Strict):
    ticket_id = fields.String(validate=ID, allow_none=True)
    external_id = fields.String(allow_none=True)
    closed_by = fields.Nested(TicketActorSchema, allow_none=True)
    reason = fields.String(validate=validate.OneOf(CLOSE_REASONS), allow_none=True)
    metadata = fields.Dict(allow_none=True)
    closed_at = fields.String(validate=TIMESTAMP, allow_none=True)


class TicketReopenSchema(_Strict):
    ticket_id = fields.String(validate=ID, allow_none=True)
    external_id = fields.String(allow_none=True)
    reopened_by = fields.Nested(TicketActorSchema, allow_none=True)
    metadata = fields.Dict(allow_none=True)
    reopened_at = fields.String(validate=TIMESTAMP, allow_none=True)


class TicketHistoryMessageSchema(_Lenient):
    message_id = fields.String(validate=ID, allow_none=True)
    direction = fields.String(validate=validate.OneOf(("incoming", "outgoing")),
                              load_default="incoming")
    sender = fields.Nested(TicketSenderSchema, allow_none=True)
    text = fields.String(validate=TEXT, allow_none=True)
    attachments = fields.List(fields.Nested(TicketAttachmentSchema), allow_none=True,
                              validate=validate.Length(max=10))
    sent_at = fields.String(validate=TIMESTAMP, allow_none=True)


class TicketHistorySchema(_Strict):
    ticket_id = fields.String(validate=ID, allow_none=True)
    external_id = fields.String(allow_none=True)
    contact = fields.Nested(TicketContactSchema, allow_none=True)
    messages = fields.List(fields.Nested(TicketHistoryMessageSchema), required=True,
                           validate=validate.Length(max=MAX_HISTORY))
    metadata = fields.Dict(allow_none=True)
    history_mode = fields.String(validate=validate.OneOf(("batch", "one_by_one")),
                                 allow_none=True)


# ---- answers -------------------------------------------------------------------------

class TicketOpenOutSchema(Schema):
    external_id = fields.String(required=True, metadata={"description": "our conversation id"})
    status = fields.String(required=True, metadata={"description": "`open`"})
    created_at = fields.String(required=True, metadata={"description": "RFC 3339, UTC"})


class TicketMessageOutSchema(Schema):
    message_external_id = fields.String(required=True, metadata={"description": "our id"})
    status = fields.String(required=True, metadata={"description": "`received` (on its way)"})


class TicketCloseOutSchema(Schema):
    external_id = fields.String(required=True)
    status = fields.String(required=True, metadata={"description": "`closed`"})
    closed_at = fields.String(allow_none=True)


class TicketReopenOutSchema(Schema):
    external_id = fields.String(required=True)
    status = fields.String(required=True, metadata={"description": "`open`"})
    reopened_at = fields.String(allow_none=True)


class TicketHistoryOutSchema(Schema):
    status = fields.String(required=True, metadata={"description": "`history_received`"})
    messages_received = fields.Integer(required=True, metadata={
        "description": "messages of this request now kept (repeats included)"})
    attachments_refused = fields.Dict(
        keys=fields.String(), values=fields.List(fields.String()), metadata={
            "description": "Only when the site's [attachments] limits refused some: each by "
                           "field (`messages.0.attachments.1`: why); the messages are kept"})


class TicketErrorSchema(Schema):
    """The contract's error envelope (mailroom reads ``error`` and ``details``)."""

    error = fields.String(required=True, metadata={"description": "machine-readable code"})
    message = fields.String(required=True)
    details = fields.Dict(metadata={"description": "e.g. `external_id` (ticket_already_open)"
                                                   " or `fields` (invalid_request)"})
