"""The generic ticketer contract's own examples and field lists, as test fixtures.

From ``weni-ai/mailroom`` ``services/tickets/generic/generic-ticketer-service.md``
(snapshot 36ef115a): §2.1 Open ticket, §2.2 Forward contact message, §2.3 Close
ticket, §2.4 Reopen ticket, §2.5 Send conversation history. The example people and
numbers are the document's own. Each fixture names its section.
"""

from __future__ import annotations

import copy

TICKET_ID = "0f4d2c8a-2c83-4f2c-9f7d-1d4f70d50e71"
TOPIC = "a1d2b8c3-9e4f-4a5b-8c6d-7e8f9a0b1c2d"
QUEUE = "c4d5e6f7-8a9b-4c0d-1e2f-3a4b5c6d7e8f"
CONTACT_UUID = "7ad9d98e-321f-4c61-9a50-79b1c7d7f621"
CONTACT_NAME = "João Silva"
PHONE = "5511999999999"

#: §2.1 "Headers".
OPEN_HEADERS = {"Content-Type": "application/json",
                "X-Request-Id": "9d81b7e2-5a4e-4fc2-b2e7-4f671e6c7770",
                "X-API-Version": "1", "Idempotency-Key": f"open-{TICKET_ID}"}

#: §2.1 "Body".
OPEN_BODY = {
    "ticket_id": TICKET_ID,
    "topic": {"uuid": TOPIC, "name": "Sales", "queue_uuid": QUEUE},
    "contact": {"uuid": CONTACT_UUID, "name": CONTACT_NAME, "urn": f"whatsapp:+{PHONE}",
                "urns": [f"whatsapp:+{PHONE}", f"tel:+{PHONE}"], "language": "por"},
    "body": "Customer requested human support.",
    "assignee": {"email": "maria@example.com", "name": "Maria Agent"},
    "metadata": {
        "project_uuid": "f1e2d3c4-b5a6-4978-8c9d-0a1b2c3d4e5f",
        "org_uuid": "1a2b3c4d-5e6f-4708-9192-a3b4c5d6e7f8",
        "channel": {"uuid": "9b8a7c6d-5e4f-4302-1a2b-3c4d5e6f7a8b", "name": "WhatsApp BR",
                    "address": "+5511888888888"},
        "flow": {"uuid": "8c7b6a5d-4e3f-4201-9a8b-7c6d5e4f3a2b", "name": "Sales flow"},
        "priority": "normal",
    },
    "opened_at": "2026-05-20T14:30:00Z",
}
#: §2.1 "Success response" (201): its fields.
OPEN_ANSWER_FIELDS = {"external_id", "status", "created_at"}
OPEN_ANSWER_STATUS = "open"
#: §2.1 "Ticket already exists" (409).
ALREADY_OPEN = {"status": 409, "error": "ticket_already_open", "details": {"external_id"}}
#: §2.1 "Error response" (400).
INVALID = {"status": 400, "error": "invalid_payload"}

#: §2.2 "Body" (``external_id`` is replaced by the one we answered).
FORWARD_BODY = {
    "ticket_id": TICKET_ID,
    "external_id": "EXT-123456",
    "message_id": "msg-789",
    "direction": "incoming",
    "sender": {"type": "contact", "id": CONTACT_UUID, "name": CONTACT_NAME},
    "text": "Hi, I need help with my order.",
    "attachments": [{"id": "att-001", "url": "https://example.com/files/image.jpg",
                     "content_type": "image/jpeg", "filename": "image.jpg", "size": 204800}],
    "metadata": {"channel": {"uuid": "9b8a7c6d-5e4f-4302-1a2b-3c4d5e6f7a8b",
                             "name": "WhatsApp BR"}},
    "sent_at": "2026-05-20T14:32:00Z",
}
#: §2.2 "Success response" (200).
FORWARD_ANSWER_FIELDS = {"message_external_id", "status"}
FORWARD_ANSWER = {"status": "received"}

#: §2.3 "Body".
CLOSE_BODY = {
    "ticket_id": TICKET_ID,
    "external_id": "EXT-123456",
    "closed_by": {"type": "platform", "id": "system"},
    "reason": "resolved",
    "metadata": {"source": "platform"},
    "closed_at": "2026-05-20T14:50:00Z",
}
#: §2.3 "Success response" and "If the ticket is already closed".
CLOSE_ANSWER = {"status": "closed"}
ALREADY_CLOSED = {"status": 409, "error": "ticket_already_closed"}
#: §2.3 "Enums".
CLOSED_BY_TYPES = ("platform", "agent", "contact", "flow", "system")

#: §2.4 "Body", "Success response" and "If the partner does not support reopening".
REOPEN_BODY = {
    "ticket_id": TICKET_ID,
    "external_id": "EXT-123456",
    "reopened_by": {"type": "platform", "id": "system"},
    "metadata": {"source": "platform"},
    "reopened_at": "2026-05-20T15:05:00Z",
}
REOPEN_ANSWER = {"status": "open"}
REOPEN_NOT_SUPPORTED = {"status": 422, "error": "reopen_not_supported"}

#: §2.5 "Body (batch)".
HISTORY_BODY = {
    "ticket_id": TICKET_ID,
    "external_id": "EXT-123456",
    "contact": {"uuid": CONTACT_UUID, "name": CONTACT_NAME, "urn": f"whatsapp:+{PHONE}"},
    "messages": [
        {"message_id": "msg-001", "direction": "outgoing", "sender": {"type": "bot"},
         "text": "Hi! How can I help?", "attachments": [], "sent_at": "2026-05-20T14:20:00Z"},
        {"message_id": "msg-002", "direction": "incoming",
         "sender": {"type": "contact", "id": CONTACT_UUID},
         "text": "I want to talk to an agent.", "attachments": [],
         "sent_at": "2026-05-20T14:21:00Z"},
    ],
    "metadata": {"project_uuid": "f0e1d2c3-b4a5-4968-8c7d-9e0f1a2b3c4d"},
}
#: §2.5.2: the answer the platform interprets by default.
HISTORY_ANSWER = {"status": "history_received", "messages_received": 2}


def body(example: dict, **changes) -> dict:
    """A deep copy of a contract example with top-level ``changes``."""
    out = copy.deepcopy(example)
    out.update(changes)
    return out
