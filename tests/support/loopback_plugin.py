"""A helpline kind for core tests: a site whose helpline is a URL we run ourselves.

It is a real plugin (registered like a third-party one), so the core is exercised
through the same contract as OpenCHS; it posts JSON to ``[helpline] url``.
"""

from __future__ import annotations

from marshmallow import Schema, fields

from plugins.api import HelplineClient, HelplineKind, SendResult, check_response, hookimpl

KIND = "loopback"


class LoopbackConfig(Schema):
    url = fields.String(required=True)
    token = fields.String(load_default=None)  # sent as a bearer token when given


class LoopbackClient(HelplineClient):
    supports = frozenset({"acknowledge"})

    def _post(self, body):
        token = self.config.get("token")
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        response = self.http.post(self.config["url"], json=body, headers=headers)
        check_response(response, "loopback")
        return SendResult(status_code=response.status_code)

    def open(self, conversation):
        return self._post({"action": "open", "session_id": conversation.id,
                           "previous_session_id": conversation.previous_session_id})

    def send_message(self, conversation, message):
        return self._post({"action": "message", "session_id": conversation.id,
                           "message_id": message.id, "text": message.text})

    def close(self, conversation, closed_by):
        return self._post({"action": "close", "session_id": conversation.id,
                           "closed_by": closed_by})

    def acknowledge(self, conversation, message, status):
        return self._post({"action": "ack", "session_id": conversation.id,
                           "message_id": message.id, "status": status})


@hookimpl
def register_helpline_kinds():
    return [HelplineKind(name=KIND, config_schema=LoopbackConfig, client=LoopbackClient)]
