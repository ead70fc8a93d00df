"""A complete helpline plugin: the kind ``example`` posts each event as JSON to one URL,
and its helpline calls back with counsellor replies and closes.

A site uses it with ``plugin = "example"`` and a ``[helpline]`` table holding ``url``,
``api_key`` (what we send) and ``callback_key`` (what the helpline sends back), both
``${ENV}`` references. Everything it uses is in ``plugins.api``; the core mounts the
callbacks at ``/v1/sites/<site>/example/reply/`` and ``.../end/``.
"""

from __future__ import annotations

import hmac

from marshmallow import Schema, fields, validate

from plugins import api  # the whole contract: api.HelplineKind, api.Callback, ...


class ExampleConfig(Schema):  # the site's [helpline] table
    url = fields.Url(required=True, require_tld=False)
    api_key = fields.String(required=True)
    callback_key = fields.String(required=True)


class ExampleClient(api.HelplineClient):
    supports = frozenset({"check"})

    def _post(self, body: dict) -> api.SendResult:
        response = self.http.post(self.config["url"], json=body,
                                  headers={"X-Api-Key": self.config["api_key"]})
        api.check_response(response, "example helpline")  # non-2xx → DeliveryFailure
        return api.SendResult(status_code=response.status_code)

    def open(self, conversation):
        return self._post({"event": "open", "session_id": conversation.id,
                           "client": conversation.client})

    def send_message(self, conversation, message):
        return self._post({"event": "message", "session_id": conversation.id,
                           "message_id": message.id, "text": message.text,
                           "attachments": list(message.attachments)})

    def close(self, conversation, closed_by):
        return self._post({"event": "close", "session_id": conversation.id,
                           "closed_by": closed_by})

    def check(self):
        self._post({"event": "ping"})
        return api.CheckResult(ok=True, detail="ping accepted")


class Reply(Schema):  # POST .../reply/: a counsellor's message
    session_id = fields.String(required=True, validate=validate.Length(max=200))
    message_id = fields.String(required=True, validate=validate.Length(min=1, max=200))
    text = fields.String(required=True, validate=validate.Length(max=10_000))
    counsellor = fields.String(load_default=None, validate=validate.Length(max=120))


class End(Schema):  # POST .../end/: the counsellor closed the chat
    session_id = fields.String(required=True, validate=validate.Length(max=200))


def authenticate(site, call):  # before the body is read; a refusal is a 401
    sent = call.headers.get("X-Api-Key", "").encode()
    if not hmac.compare_digest(sent, site.helpline["callback_key"].encode()):
        raise api.CallbackRefused("wrong X-Api-Key")


def events(action, body):
    ref = api.ConversationRef(session_id=body["session_id"])
    if action == "reply":
        return [api.CounsellorMessage(ref, body["text"], body["message_id"], body["counsellor"])]
    return [api.HelplineClose(ref)]


@api.hookimpl
def register_helpline_kinds():
    return [api.HelplineKind(
        name="example", config_schema=ExampleConfig, client=ExampleClient,
        description="Example: JSON to one URL, replies back", events=events,
        authenticate=authenticate, callbacks=(
            api.Callback("reply", "reply/", Reply, "A counsellor's reply"),
            api.Callback("end", "end/", End, "The counsellor closed the chat")))]
