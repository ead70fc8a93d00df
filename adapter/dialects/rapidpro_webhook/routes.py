"""Start, message, close, acknowledge and read a conversation (the chatbot's side)."""

from __future__ import annotations

from flask import current_app, g, jsonify
from flask.views import MethodView

from adapter.api.blueprint import Blueprint, schema_instance

from ... import access, cases, protocol
from ...api.docs import READ, WRITE, errors, idempotent
from ...attachments import refusal_message, screen_message
from ...auth import CHATBOT_OR_HELPLINE, require_client, require_site_access
from ...errors import ApiError
from ...extensions import db
from ...idempotency import idempotency_key, respond
from ...models import Conversation, Direction
from ...outbox import HELPLINE
from ...sites import Site
from ...transactions import single_statement_writes
from . import wire as inbound
from .schemas import (
    AckOutSchema,
    AckSchema,
    AttachmentsRefusedSchema,
    CloseOutSchema,
    CloseSchema,
    ConversationDetailSchema,
    ConversationOutSchema,
    ConversationQuerySchema,
    MessageAcceptedSchema,
    MessageInSchema,
    StartSchema,
)

blp = Blueprint("conversations", __name__, url_prefix="/v1/conversations",
                description="The conversation protocol, as the chatbot (RapidPro/Weni) sees it")
SECURITY = [{"Token": []}]


def _result_keys() -> dict:
    return current_app.config["RESULT_KEYS"]


def _routed_start(body: dict) -> tuple[protocol.StartRequest, Site | None, list[str]]:
    """Read a start with the deployment's result keys and route it; then read it again
    with the chosen site's own keys (its ``result_keys``). A body that routes only under
    some site's own keys (say, its location key) goes to that site."""
    key = idempotency_key()
    registry = protocol.sites()
    # Reads that only route are not checked; the one kept (and stored) is.
    req = inbound.start_request(body, _result_keys(), key, check=False)
    site, tried = registry.route(site=req.site, location=req.location, urn=req.urn)
    if site is not None:
        return inbound.start_request(body, site.result_keys, key), site, tried
    for candidate in registry:
        again = inbound.start_request(body, candidate.result_keys, key, check=False)
        routed, _ = registry.route(site=again.site, location=again.location, urn=again.urn)
        if routed is not None and routed.code == candidate.code:
            return inbound.start_request(body, candidate.result_keys, key), routed, tried
    return inbound.start_request(body, _result_keys(), key), None, tried


def _dump(schema: type, obj) -> dict:
    """The answer, with what the database fills in (timestamps) as it will be committed:
    the first answer is also the one a repeat replays."""
    db.session.flush()
    return schema_instance(schema).dump(obj)


def _site_result_keys(conversation: Conversation):
    site = protocol.sites().get(conversation.site)
    return site.result_keys if site is not None else _result_keys()


def _has_attachments(body: dict) -> bool:
    return bool(body.get("attachments") or (body.get("input") or {}).get("attachments"))


def _conversation(conversation_id: str, *, write: bool = True) -> Conversation:
    return access.conversation_for(g.client, conversation_id, write=write)


@blp.route("")
class Conversations(MethodView):
    @require_client("chatbot")
    @blp.doc(security=SECURITY)
    @idempotent(blp)
    @blp.arguments(StartSchema)
    @blp.response(201, ConversationOutSchema, description="Started")
    @blp.alt_response(200, schema=ConversationOutSchema,
                      description="Already started: the first answer again")
    @errors(blp, *WRITE)
    def post(self, body):
        """Start a conversation: the chatbot escalates a child to the helpline.

        Accepts RapidPro's default Call Webhook body, the resthook/legacy body, or
        explicit fields. The site comes from `site`, else the location, else the URN.
        """
        def operation():
            req, site, tried = _routed_start(body)
            if site is None:
                raise ApiError(422, "unroutable", "no site for this conversation; tried "
                               + ", ".join(tried), {"site": [f"no site for {', '.join(tried)}"]})
            require_site_access(site.code)
            req, refused = screen_message(site, req)
            intake_problem = None
            if cases.wants_case(body, site):
                try:
                    req.intake = cases.read_intake(body, site)
                except ApiError as problem:
                    # A child at risk is escalated even when the intake is unusable: the
                    # conversation opens, the case does not, and the answer says why.
                    intake_problem = problem
            conversation, created = protocol.start_conversation(req, site, g.client.name,
                                                                g.client.namespace)
            # A repeat names a conversation of this client's namespace, perhaps at a site
            # it may no longer use (or another than the body now routes to).
            require_site_access(conversation.site)
            out = _dump(ConversationOutSchema, conversation)
            case = cases.case_for_conversation(conversation)
            if case is not None:
                out["case_id"] = case.id
            site_problem = protocol.site_of(conversation).problem_for(HELPLINE)
            if site_problem:
                out["site_problem"] = site_problem
            after_hours = protocol.after_hours_info(conversation, protocol.site_of(conversation))
            if after_hours is not None:
                out["after_hours"] = after_hours
            if intake_problem is not None:
                out["intake_errors"] = {"code": intake_problem.code,
                                        "errors": intake_problem.errors}
            if refused:
                # Never a 422 for a start: the child is escalated whatever they attached.
                out["attachment_errors"] = refused
            return (201 if created else 200), out

        return respond(operation)


@blp.route("/<path:conversation_id>/messages")
class ClientMessages(MethodView):
    @require_client("chatbot")
    @blp.doc(security=SECURITY)
    @idempotent(blp)
    @blp.arguments(MessageInSchema)
    @blp.response(202, MessageAcceptedSchema, description="Accepted, on its way")
    @blp.alt_response(200, schema=MessageAcceptedSchema,
                      description="Already accepted: the first answer again")
    @blp.alt_response(422, schema=AttachmentsRefusedSchema, description=(
        "`attachments_refused`: the site's [attachments] limits refuse some attachments "
        "(`errors` names each, `attachments.1`: why); the text and the other attachments "
        "were accepted all the same (`accepted`, with the message id). A repeat gets the "
        "same answer and stores nothing twice. Also `unroutable`, `idempotency_key_reused` "
        "(no `accepted` then)"))
    @errors(blp, *(status for status in WRITE if status != 422), 404, 409)
    def post(self, body, conversation_id):
        """Send a client message to the counsellor.

        Attachments the site does not take (count, type) are refused by name with a 422;
        the rest of the message is accepted and delivered all the same.
        """
        def operation():
            key = idempotency_key()
            # Read with the deployment's keys to look the conversation and an earlier
            # message up in one query; read again with the site's own keys (a site with
            # other keys costs a second lookup, made by accept_client_message).
            guess = inbound.client_message(body, _result_keys(), key, check=False)
            found, earlier = protocol.find_conversation_with_message(
                g.client.namespace, conversation_id, Direction.TO_HELPLINE, guess.message_id)
            conversation = access.check_conversation(g.client, found, write=True)
            msg = inbound.client_message(body, _site_result_keys(conversation), key)
            if not msg.text and not msg.attachments:
                raise ApiError(400, "invalid_request", "a message needs text or attachments",
                               {"text": ["Missing data for required field."]})
            msg, refused = screen_message(protocol.site_of(conversation), msg)
            out = None
            if msg.text or msg.attachments:
                message, created = protocol.accept_client_message(
                    conversation, msg, looked_up=(guess.message_id, earlier), may_reopen=True)
                out = _dump(MessageAcceptedSchema, message)
                # A return may have moved the chatbot's id to a new conversation.
                out["conversation_id"] = db.session.get(Conversation,
                                                        message.conversation_id).external_id
            if refused:
                return 422, {"code": "attachments_refused", "message": refusal_message(refused),
                             "errors": refused, "accepted": out}
            return (202 if created else 200), out

        if idempotency_key() or _has_attachments(body):
            # A message with attachments may be more than one write (a re-hosting site
            # stores them as a message of their own): a transaction.
            return respond(operation)
        try:
            with single_statement_writes():
                return respond(operation)
        except protocol.ReturnNeedsTransaction:
            db.session.rollback()  # nothing was written: the return runs in a transaction
            return respond(operation)


@blp.route("/<path:conversation_id>/close")
class Close(MethodView):
    @require_client("chatbot")
    @blp.doc(security=SECURITY)
    @idempotent(blp)
    @blp.arguments(CloseSchema)
    @blp.response(200, CloseOutSchema, description="Closed (or already closed)")
    @errors(blp, *WRITE, 404)
    def post(self, body, conversation_id):
        """End the conversation from the chatbot side; the helpline is told. Idempotent."""
        def operation():
            conversation = _conversation(conversation_id)
            protocol.close_from_chatbot(conversation, g.client.name, body.get("reason"))
            return 200, _dump(CloseOutSchema, conversation)

        return respond(operation)


@blp.route("/<path:conversation_id>/acks")
class Acks(MethodView):
    @require_client("chatbot")
    @blp.doc(security=SECURITY)
    @idempotent(blp)
    @blp.arguments(AckSchema)
    @blp.response(200, AckOutSchema, description="Recorded")
    @errors(blp, *WRITE, 404)
    def post(self, body, conversation_id):
        """Acknowledge a counsellor message: it reached (or was read by, or failed to reach)
        the client."""
        def operation():
            conversation = _conversation(conversation_id)
            message = protocol.acknowledge_from_chatbot(conversation, body["message_id"],
                                                        body["status"], g.client.name)
            return 200, _dump(AckOutSchema, message)

        return respond(operation)


@blp.route("/<path:conversation_id>")
class ConversationDetail(MethodView):
    @require_client(CHATBOT_OR_HELPLINE)
    @blp.doc(security=SECURITY)
    @blp.arguments(ConversationQuerySchema, location="query")
    @blp.response(200, ConversationDetailSchema)
    @errors(blp, *READ, 400)
    def get(self, query, conversation_id):
        """A conversation's state, counsellor and messages with their delivery status.

        Message text only with `include_text=true`, for clients allowed to read it.
        """
        conversation = _conversation(conversation_id, write=False)
        if query["include_text"] and not g.client.can_read_text:
            raise ApiError(403, "forbidden", "this client may not read message text")
        out = ConversationDetailSchema().dump(conversation)
        if not query["include_text"]:
            for message in out["messages"]:
                message.pop("text", None)
        return jsonify(out)


def _blueprints():
    from .cases import blp as cases_blp

    return [(blp, {}), (cases_blp, {})]


BLUEPRINTS = _blueprints()
