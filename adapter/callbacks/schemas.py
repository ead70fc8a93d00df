"""What every callback answers."""

from __future__ import annotations

from marshmallow import Schema, fields


class CallbackAnswerSchema(Schema):
    status = fields.String(metadata={"description": "accepted, assigned, unchanged, closed, "
                                                    "already_closed, or a message's status"})
    conversation_id = fields.String()
    message_id = fields.String()
