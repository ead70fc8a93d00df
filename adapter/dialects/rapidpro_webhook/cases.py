"""Open a helpline case and follow it: ``POST /v1/cases``, ``GET /v1/cases/<id>``."""

from __future__ import annotations

from flask import current_app, g
from flask.views import MethodView

from adapter.api.blueprint import Blueprint

from ... import access, cases, protocol
from ...api.docs import READ, WRITE, errors, idempotent
from ...auth import CHATBOT_OR_HELPLINE, require_client, require_site_access
from ...errors import ApiError
from ...extensions import db
from ...idempotency import idempotency_key, respond
from ...models import Conversation
from ...sites import Site
from .case_schemas import CaseInSchema, CaseOutSchema
from .wire import result_value

blp = Blueprint("cases", __name__, url_prefix="/v1/cases",
                description="Case creation: what the child shared becomes a helpline case")
SECURITY = [{"Token": []}]


def _location(body: dict) -> str | None:
    """Where the case is from, for routing: explicit, intake, or a location result."""
    keys = (*current_app.config["RESULT_KEYS"]["location"], *cases.DEFAULT_KEYS["location"])
    return (body.get("location") or (body.get("intake") or {}).get("location")
            or result_value(body.get("results"), keys))


def _route(body: dict, conversation: Conversation | None) -> Site:
    registry = protocol.sites()
    if conversation is not None:
        site = registry.get(conversation.site)
        if site is None or (body.get("site") and body["site"] != site.code):
            raise ApiError(422, "unroutable", "the case's site is not the conversation's",
                           {"site": [f"the conversation is at {conversation.site!r}"]})
        return site
    site, tried = registry.route(site=body.get("site"), location=_location(body),
                                 urn=(body.get("contact") or {}).get("urn"))
    if site is None:
        raise ApiError(422, "unroutable", "no site for this case; tried " + ", ".join(tried),
                       {"site": [f"no site for {', '.join(tried)}"]})
    return site


def _conversation(body: dict) -> Conversation | None:
    reference = body.get("conversation_id")
    if not reference:
        return None
    try:
        return access.conversation_for(g.client, reference)
    except ApiError as problem:
        if problem.status != 404:
            raise
        raise ApiError(404, "conversation_not_found", "no such conversation",
                       {"conversation_id": ["unknown conversation"]}) from None


@blp.route("")
class Cases(MethodView):
    @require_client("chatbot")
    @blp.doc(security=SECURITY)
    @idempotent(blp)
    @blp.arguments(CaseInSchema)
    @blp.response(202, CaseOutSchema, description="Accepted: `pending`, on its way")
    @blp.alt_response(200, schema=CaseOutSchema,
                      description="Already opened (same case id): the case as it stands")
    @errors(blp, *WRITE, 404)
    def post(self, body):
        """Open a case at the helpline from what the child shared with the chatbot.

        Answers at once with our case id and `pending`; the helpline is called by the
        delivery engine. Accepts RapidPro's default Call Webhook body (intake in
        `results`, keys configurable per site) or explicit `intake` fields.
        """
        def operation():
            conversation = _conversation(body)
            site = _route(body, conversation)
            require_site_access(site.code)
            external_id = cases.chatbot_case_id(body, site, idempotency_key())
            existing = (access.case_by_chatbot_id(g.client.namespace, external_id)
                        if external_id else None)
            if existing is not None:
                require_site_access(existing.site)
                return 200, CaseOutSchema().dump(existing)
            intake = cases.read_intake(body, site)
            contact = body.get("contact") or {}
            case = cases.open_case(site, intake, actor=g.client.name,
                                   namespace=g.client.namespace, conversation=conversation,
                                   external_id=external_id, contact_uuid=contact.get("uuid"),
                                   urn=contact.get("urn") or (body.get("input") or {}).get("urn"))
            db.session.flush()
            return 202, CaseOutSchema().dump(case)

        return respond(operation)


@blp.route("/<path:case_id>")
class CaseDetail(MethodView):
    @require_client(CHATBOT_OR_HELPLINE)
    @blp.doc(security=SECURITY)
    @blp.response(200, CaseOutSchema)
    @errors(blp, *READ)
    def get(self, case_id):
        """A case's status: `pending`, `created` (with the helpline's reference) or `failed`
        (with the reason). By our case id or the chatbot's."""
        return access.case_for(g.client, case_id)
