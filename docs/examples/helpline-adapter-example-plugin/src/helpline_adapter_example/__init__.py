"""A minimal helpline plugin: the kind ``example`` posts each event as JSON to one URL.

A site uses it with ``plugin = "example"`` and a ``[helpline]`` table holding ``url``
and ``api_key`` (an ``${ENV}`` reference). Everything it uses is in ``plugins.api``.
"""

from __future__ import annotations

from marshmallow import Schema, fields

from plugins.api import (
    CheckResult,
    HelplineClient,
    HelplineKind,
    SendResult,
    check_response,
    hookimpl,
)


class ExampleConfig(Schema):
    url = fields.Url(required=True, require_tld=False)
    api_key = fields.String(required=True)


class ExampleClient(HelplineClient):
    supports = frozenset({"check"})

    def _post(self, body: dict) -> SendResult:
        response = self.http.post(self.config["url"], json=body,
                                  headers={"X-Api-Key": self.config["api_key"]})
        check_response(response, "example helpline")  # non-2xx → DeliveryFailure
        return SendResult(status_code=response.status_code)

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
        return CheckResult(ok=True, detail="ping accepted")


@hookimpl
def register_helpline_kinds():
    return [HelplineKind(name="example", config_schema=ExampleConfig, client=ExampleClient,
                         description="Example: JSON to one URL")]
