"""``/api/token/``, ``/api/chat/`` and ``/api/chat/<session>/close/``: the seed's chat API.

Paths, bodies and answers are the incumbent gateway's, so Weni's existing integration
works unchanged; behind them is the conversation protocol (durable, deduplicated,
delivered by the outbox). Trailing slashes are optional, as curl does not follow the
redirect Flask would otherwise answer with.
"""

from __future__ import annotations

from flask import g, request, url_for
from flask.views import MethodView
from webargs import core

from adapter.api.blueprint import ArgumentsParser, Blueprint

from ...api.docs import WRITE, errors, idempotent
from ...auth import CHATBOT_OR_HELPLINE, require_client
from ...errors import ApiError
from ...idempotency import idempotency_key, respond
from ...transactions import commit
from . import BLUEPRINT_NAME, SEED_BLUEPRINT_NAME, service
from .schemas import (
    ChatClosedSchema,
    ChatCloseSchema,
    ChatInSchema,
    ChatPageSchema,
    ChatQuerySchema,
    ChatSentSchema,
    ChatTokenRequestSchema,
    ChatTokenSchema,
)

SECURITY = [{"Token": []}]
WRITE_STATUSES = tuple(status for status in WRITE if status != 415)  # any Content-Type


class AnyContentTypeJsonParser(ArgumentsParser):
    """Reads the body as JSON whatever its Content-Type says: the seed's own close
    example is ``curl --data-raw '{...}'`` with no header, which curl sends as a form."""

    def _raw_load_json(self, req):
        data = req.get_data(cache=True)
        return core.parse_json(data) if data else core.missing


class CompatBlueprint(Blueprint):
    ARGUMENTS_PARSER = AnyContentTypeJsonParser()


blp = CompatBlueprint(
    BLUEPRINT_NAME, __name__, url_prefix="/api",
    description="The OpenCHS gateway's chat API (the seed's), for drop-in compatibility "
                "with Weni's existing integration. See docs/openchs-compat.md.")


@blp.route("/token/", strict_slashes=False)
class Token(MethodView):
    @blp.arguments(ChatTokenRequestSchema)
    @blp.response(200, ChatTokenSchema, description="A new time-bound token")
    @errors(blp, 400, 401, 413, 429, 503)
    def post(self, body):
        """Log in: exchange an account's username and password for a time-bound token.

        Failed logins are limited per account and per address (`LOGIN_FAILURES_PER_*`
        per `LOGIN_WINDOW_SECONDS`): past a limit, `429 too_many_logins` with
        `Retry-After`, even for the right password, until the window has passed.
        """
        token, expires_at = service.login(body["username"], body["password"])
        commit()
        return {"token": token, "expires_at": expires_at}


@blp.route("/chat/", strict_slashes=False)
class Chats(MethodView):
    @require_client(CHATBOT_OR_HELPLINE)
    @blp.doc(security=SECURITY)
    @blp.arguments(ChatQuerySchema, location="query")
    @blp.response(200, ChatPageSchema, description="One page, newest first")
    @errors(blp, 400, 401, 403, 404, 503)
    def get(self, query):
        """List the caller's chats (messages), newest first, paginated like DRF.

        `chat_message` is null unless the account may read message text.
        """
        page, size = query["page"], query["page_size"]
        count, rows = service.list_chats(g.client, page, size)
        if page > 1 and not rows:
            raise ApiError(404, "not_found", "invalid page", {"page": ["Invalid page."]})
        views = [service.chat_view(m, c, g.client) for m, c in rows]
        return {
            "count": count,
            "next": _page_url(page + 1, size) if page * size < count else None,
            "previous": _page_url(page - 1, size) if page > 1 else None,
            "results": views,
        }

    @require_client(CHATBOT_OR_HELPLINE)
    @blp.doc(security=SECURITY)
    @idempotent(blp)
    @blp.arguments(ChatInSchema)
    @blp.response(201, ChatSentSchema, description="Durable, on its way (also for a repeat)")
    @errors(blp, *WRITE_STATUSES, 404, 409)
    def post(self, body):
        """Send a chat: WENI from the client (a new `chat_session` starts a conversation),
        OUTBOX/HELPLINE from the counsellor. Answered 201 only once it is durable; the
        same chat posted again is the same message."""
        key = idempotency_key()

        def operation():
            message, conversation = service.post_chat(g.client, body, key)
            return 201, {"status": "success", "uuid": message.id,
                         "chat_session": conversation.external_id}

        return respond(operation)


@blp.route("/chat/<path:session>/close/", strict_slashes=False)
class CloseChat(MethodView):
    @require_client(CHATBOT_OR_HELPLINE)
    @blp.doc(security=SECURITY)
    @idempotent(blp)
    @blp.arguments(ChatCloseSchema)
    @blp.response(200, ChatClosedSchema, description="Closed (or already closed)")
    @errors(blp, *WRITE_STATUSES, 404)
    def post(self, body, session):
        """Close a chat from the side named in `chat_source`; the other side is told.

        Any session id works, UUIDs with hyphens included. Closing a closed chat is 200.
        """
        def operation():
            conversation = service.close_chat(g.client, session, body.get("chat_source"))
            return 200, {"status": "success", "chat_session": conversation.external_id,
                         "closed_by": conversation.closed_by}

        return respond(operation)


def _page_url(page: int, size: int) -> str:
    """Absolute, and under the mount point (SCRIPT_NAME), as DRF's links are."""
    return url_for(request.endpoint, page=page, page_size=size, _external=True)


#: The seed's own URLs are ``https://<host>/open/api/...``: served as they are, so Weni's
#: integration needs no proxy rewrite or ``SCRIPT_NAME`` (``/api/...`` stays too).
SEED_PREFIX = "/open/api"
BLUEPRINTS = [(blp, {}), (blp, {"url_prefix": SEED_PREFIX, "name": SEED_BLUEPRINT_NAME})]
