"""Request and response bodies of the case routes."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from ...cases import IntakeSchema
from ...extensions import db
from ...models import Conversation
from .schemas import ID, RapidProBodySchema


class CaseInSchema(RapidProBodySchema):
    """RapidPro's Call Webhook body with intake ``results``, or explicit fields."""

    case_id = fields.String(validate=ID, metadata={
        "description": "The chatbot's id for the case (idempotency); derived from results "
                       "`case_id`, the run uuid or the Idempotency-Key when absent"})
    conversation_id = fields.String(validate=ID, metadata={
        "description": "A conversation this case belongs to (ours or the chatbot's id)"})
    site = fields.String(validate=validate.Length(max=64))
    location = fields.String(validate=validate.Length(max=120), metadata={
        "description": "Routes the case when `site` is absent (else intake location)"})
    intake = fields.Nested(IntakeSchema, metadata={
        "description": "Explicit intake fields; they override the ones read from results"})


class CaseOutSchema(Schema):
    case_id = fields.String(attribute="id")
    chatbot_case_id = fields.String(attribute="external_id", allow_none=True)
    site = fields.String()
    status = fields.String(metadata={"description": "pending → created | failed"})
    case_reference = fields.String(attribute="helpline_reference", allow_none=True,
                                   metadata={"description": "The helpline's case id"})
    failure_reason = fields.String(allow_none=True)
    conversation_id = fields.Method("_conversation", allow_none=True)
    client = fields.String(attribute="client_pseudonym", allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()

    def _conversation(self, case) -> str | None:
        if not case.conversation_id:
            return None
        conversation = db.session.get(Conversation, case.conversation_id)
        return conversation.external_id if conversation is not None else None


__all__ = ["CaseInSchema", "CaseOutSchema", "IntakeSchema"]
