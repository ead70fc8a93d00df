"""``/v1/tickets``: Weni mailroom's generic ticketer, served by the adapter.

Each route parses the contract's body into a protocol operation; answers and errors are
the contract's (``{error, message, details}``). Authenticated with the adapter's API keys
(``Authorization: Bearer <api_token>``, the chatbot role), and a client sees only its own
tickets (:mod:`adapter.access`). ``X-API-Version``, when sent, must be ``1``.
"""

from __future__ import annotations

import logging

from flask import g, jsonify, request
from flask.views import MethodView

from adapter.api.blueprint import Blueprint

from ... import access, protocol
from ...api.docs import IDEMPOTENCY_KEY
from ...attachments import refusal_message, screen_message
from ...auth import require_client, require_site_access
from ...errors import ApiError
from ...extensions import db
from ...idempotency import idempotency_key, respond
from ...models import Conversation, utcnow
from . import BLUEPRINT_NAME
from . import wire as inbound
from .schemas import (
    TicketCloseOutSchema,
    TicketCloseSchema,
    TicketErrorSchema,
    TicketHistoryOutSchema,
    TicketHistorySchema,
    TicketMessageOutSchema,
    TicketMessageSchema,
    TicketOpenOutSchema,
    TicketOpenSchema,
    TicketReopenOutSchema,
    TicketReopenSchema,
)

log = logging.getLogger(__name__)

blp = Blueprint(BLUEPRINT_NAME, __name__, url_prefix="/v1/tickets",
                description="Weni mailroom's generic ticketer contract (the weni-ticketer "
                            "dialect): tickets opened, forwarded, closed and reopened by the "
                            "platform")
SECURITY = [{"Token": []}]
API_VERSION = "1"

#: Our protocol's error codes, as the contract names them.
CODES = {"conversation_not_found": "ticket_not_found", "conversation_closed": "ticket_closed",
         "malformed_json": "invalid_payload", "invalid_request": "invalid_payload"}

DESCRIPTIONS = {
    400: "Malformed body, invalid fields (`details.fields`), or an X-API-Version other than 1",
    401: "Missing or invalid API token",
    403: "Not allowed for this site or role",
    404: "`ticket_not_found`: no such ticket for this client",
    409: "`ticket_already_open` (with `details.external_id`), `ticket_already_closed`, or "
         "`ticket_closed` (a message to a closed ticket)",
    413: "Body larger than the limit",
    415: "Body is not application/json",
    422: "`unroutable` (no site for this topic/queue/location/URN), `reopen_not_supported`, "
         "`idempotency_key_reused`, or (a message) `attachments_refused`: the site's "
         "[attachments] limits refuse some attachments, named in `details.fields` "
         "(`attachments.1`: why), while the text and the other attachments were received "
         "(`details.message_external_id`, null when nothing was left)",
    429: "Rate limited (see Retry-After)",
    503: "A dependency is down: nothing was accepted (see Retry-After)",
}
WRITE = (400, 401, 403, 413, 415, 422, 429, 503)
#: The contract's headers, as mailroom sends them (open-, forward-, history-… keys).
CONTRACT_HEADERS = [
    IDEMPOTENCY_KEY,
    {"in": "header", "name": "X-API-Version", "required": False,
     "schema": {"type": "string", "enum": [API_VERSION]},
     "description": "The contract's version; another answers 400 unsupported_api_version"},
    {"in": "header", "name": "X-Request-Id", "required": False,
     "schema": {"type": "string", "maxLength": 64},
     "description": "Logged (an id only) and echoed in the answer"},
]


class TicketError(ApiError):
    """An error with the contract's ``details`` (e.g. ``external_id``)."""

    def __init__(self, status: int, code: str, message: str, details: dict | None = None):
        super().__init__(status, code, message)
        self.details = details or {}


def errors(*statuses: int):
    def decorator(view):
        for status in sorted(set(statuses)):
            view = blp.alt_response(status, schema=TicketErrorSchema,
                                    description=DESCRIPTIONS[status])(view)
        return view

    return decorator


@blp.before_request
def _check_version():
    version = request.headers.get("X-API-Version")
    if version is not None and version.strip() != API_VERSION:
        raise TicketError(400, "unsupported_api_version",
                          f"X-API-Version {API_VERSION} is the only version served",
                          {"supported": [API_VERSION]})


@blp.errorhandler(TicketError)
def _ticket_error(error: TicketError):
    body = {"error": error.code, "message": error.message}
    if error.details:
        body["details"] = error.details
    response = jsonify(body)
    response.status_code = error.status
    for name, value in error.headers.items():
        response.headers[name] = value
    return response


@blp.after_request
def _contract_errors(response):
    """Every other error (auth, body guards, schemas, the protocol's) in the contract's
    envelope: ``{error, message}``, field problems under ``details.fields``."""
    if response.status_code < 400 or not response.is_json:
        return response
    body = response.get_json(silent=True)
    if not isinstance(body, dict) or "error" in body or "code" not in body:
        return response
    out = {"error": CODES.get(body["code"], body["code"]), "message": body.get("message", "")}
    if body.get("errors"):
        out["details"] = {"fields": body["errors"]}
    response.set_data(jsonify(out).get_data())
    return response


def _ticket(external_id: str) -> Conversation:
    """A ticket of this client (its namespace, a site it may use), by our id (the
    contract's ``external_id``) or the platform's ticket uuid."""
    conversation = access.lookup(g.client, external_id)
    if conversation is not None and conversation.dialect != inbound.DIALECT:
        conversation = None  # another dialect's conversation is no ticket
    return access.check_conversation(g.client, conversation, write=True)


def _status(conversation: Conversation) -> str:
    return "open" if conversation.is_open else "closed"


def _log(event: str, conversation: Conversation | None = None, **ids) -> None:
    log.info(event, extra={"request_id": g.get("request_id"),
                           "conversation_id": conversation.id if conversation else None,
                           **ids})


@blp.route("")
class Tickets(MethodView):
    @require_client("chatbot")
    @blp.doc(security=SECURITY, parameters=CONTRACT_HEADERS)
    @blp.arguments(TicketOpenSchema)
    @blp.response(201, TicketOpenOutSchema,
                  description="Opened: `external_id` is our conversation id")
    @errors(*WRITE, 409)
    def post(self, body):
        """Open a ticket: a flow hands the child to a counsellor.

        Answered at once (the helpline is reached by the delivery engine). The same
        `Idempotency-Key` replays the first answer; another open of a ticket already
        open answers 409 `ticket_already_open` with `details.external_id`.
        """
        def operation():
            site, tried = inbound.route(protocol.sites(), body)
            if site is None:
                raise TicketError(422, "unroutable", "no site for this ticket; tried "
                                  + ", ".join(tried), {"tried": tried})
            require_site_access(site.code)
            req = inbound.start_request(body)
            conversation, created = protocol.start_conversation(req, site, g.client.name,
                                                                g.client.namespace)
            if not created:
                require_site_access(conversation.site)
                if conversation.is_open:
                    raise TicketError(409, "ticket_already_open", "the ticket is already open",
                                      {"external_id": conversation.id})
                raise TicketError(409, "ticket_already_closed",
                                  "the ticket was opened and closed; reopen it",
                                  {"external_id": conversation.id})
            db.session.flush()
            _log("weni.ticket_opened", conversation, site=site.code)
            return 201, {"external_id": conversation.id, "status": "open",
                         "created_at": inbound.rfc3339(conversation.created_at)}

        return respond(operation)


@blp.route("/<external_id>/messages")
class TicketMessages(MethodView):
    @require_client("chatbot")
    @blp.doc(security=SECURITY, parameters=CONTRACT_HEADERS)
    @blp.arguments(TicketMessageSchema)
    @blp.response(200, TicketMessageOutSchema,
                  description="Received (or already received: the same `message_id`), on "
                              "its way to the counsellor")
    @errors(*WRITE, 404, 409)
    def post(self, body, external_id):
        """Forward the child's message to the counsellor (`direction: incoming`).

        History sent one by one arrives here too (an `Idempotency-Key` `history-…`, or
        `direction: outgoing` for the bot's messages): it is kept as history.
        """
        def operation():
            conversation = _ticket(external_id)
            key = idempotency_key()
            if body.get("direction") == "outgoing" or (key or "").startswith("history-"):
                msg = inbound.history_message(body, 0)
            else:
                msg = inbound.client_message(body, key)
            if not msg.text and not msg.attachments:
                raise TicketError(400, "empty_message", "text or attachments are required")
            msg, refused = screen_message(protocol.site_of(conversation), msg)
            message = None
            if msg.text or msg.attachments:
                message, created = protocol.accept_client_message(conversation, msg)
                db.session.flush()
                _log("weni.message_accepted", conversation, message_id=message.id)
            if refused:
                # Answered, not raised: what was accepted is committed with the answer.
                return 422, {"error": "attachments_refused", "message": refusal_message(refused),
                             "details": {"fields": refused,
                                         "message_external_id": message.id if message else None,
                                         "status": "received" if message else None}}
            return 200, {"message_external_id": message.id, "status": "received"}

        return respond(operation)


@blp.route("/<external_id>/close")
class TicketClose(MethodView):
    @require_client("chatbot")
    @blp.doc(security=SECURITY, parameters=CONTRACT_HEADERS)
    @blp.arguments(TicketCloseSchema)
    @blp.response(200, TicketCloseOutSchema, description="Closed; the helpline is told")
    @errors(*WRITE, 404, 409)
    def post(self, body, external_id):
        """Close the ticket from the platform (an agent, a flow, or the echo of our own
        close callback). A closed ticket answers 409 `ticket_already_closed`, which the
        platform takes as closed; nothing is written then (the echo arrives while our
        callback waits)."""
        def operation():
            conversation = _ticket(external_id)
            if not conversation.is_open or not protocol.close_from_chatbot(
                    conversation, g.client.name, body.get("reason") or None):
                raise TicketError(409, "ticket_already_closed", "the ticket is already closed",
                                  {"external_id": conversation.id})
            _log("weni.ticket_closed", conversation)
            return 200, {"external_id": conversation.id, "status": "closed",
                         "closed_at": inbound.rfc3339(conversation.closed_at)}

        return respond(operation)


@blp.route("/<external_id>/reopen")
class TicketReopen(MethodView):
    @require_client("chatbot")
    @blp.doc(security=SECURITY, parameters=CONTRACT_HEADERS)
    @blp.arguments(TicketReopenSchema)
    @blp.response(200, TicketReopenOutSchema,
                  description="Open again (or already open): back to `requested`, and "
                              "opened at the helpline again")
    @errors(*WRITE, 404)
    def post(self, body, external_id):
        """Reopen a closed ticket. A site that says it cannot (`[chatbot.weni] reopen =
        false`) answers 422 `reopen_not_supported`, and the ticket stays closed."""
        def operation():
            conversation = _ticket(external_id)
            site = protocol.site_of(conversation)
            if conversation.is_open:
                return 200, {"external_id": conversation.id, "status": "open",
                             "reopened_at": None}
            if site.weni is None or not site.weni.reopen:
                raise TicketError(422, "reopen_not_supported",
                                  f"site {site.code!r} does not reopen tickets")
            protocol.reopen_from_chatbot(conversation, g.client.name)
            _log("weni.ticket_reopened", conversation)
            return 200, {"external_id": conversation.id, "status": "open",
                         "reopened_at": inbound.rfc3339(utcnow())}

        return respond(operation)


@blp.route("/<external_id>/history")
class TicketHistory(MethodView):
    @require_client("chatbot")
    @blp.doc(security=SECURITY, parameters=CONTRACT_HEADERS)
    @blp.arguments(TicketHistorySchema)
    @blp.response(200, TicketHistoryOutSchema, description="Kept as history the counsellor sees")
    @errors(*WRITE, 404, 409)
    def post(self, body, external_id):
        """The conversation before the handoff (mailroom's batches, 50 by default).

        Kept in `sent_at` order, labelled as earlier messages of the child or the bot;
        a message already forwarded (same `message_id`) is not told twice. It may come
        after the first forwarded messages: the labels carry each message's time.
        """
        def operation():
            conversation = _ticket(external_id)
            entries = inbound.sorted_history(body["messages"])
            site = protocol.site_of(conversation)
            kept = 0
            refused_all: dict[str, list[str]] = {}
            for index, entry in enumerate(entries):
                msg = inbound.history_message(entry, index)
                if not msg.text and not msg.attachments:
                    continue
                msg, refused = screen_message(site, msg)
                refused_all.update(refused)
                protocol.accept_client_message(conversation, msg)
                kept += 1
            db.session.flush()
            _log("weni.history_accepted", conversation, count=kept)
            out = {"status": "history_received", "messages_received": kept}
            if refused_all:
                out["attachments_refused"] = refused_all
            return 200, out

        return respond(operation)


BLUEPRINTS = [(blp, {})]
