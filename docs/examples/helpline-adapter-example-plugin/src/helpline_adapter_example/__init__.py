"""A minimal helpline plugin: the kind ``example`` posts each event as JSON to one URL.

A site uses it with ``plugin = "example"`` and a ``[helpline]`` table holding ``url``
and ``api_key`` (an ``${ENV}`` reference).
"""

from __future__ import annotations

from marshmallow import Schema, fields

from plugins import hookimpl
from plugins.http import check_response, transport_errors_retryable
from plugins.types import CheckResult, DeliveryFailure, HelplineKind, SendResult

KIND = "example"


class ExampleConfig(Schema):
    url = fields.Url(required=True, require_tld=False)
    api_key = fields.String(required=True)


@hookimpl
def register_helpline_kinds():
    return [HelplineKind(name=KIND, config_schema=ExampleConfig,
                         description="Example: JSON to one URL")]


@transport_errors_retryable
def _post(site, http, body: dict) -> SendResult:
    response = http.post(site.helpline["url"], json=body,
                         headers={"X-Api-Key": site.helpline["api_key"]})
    check_response(response, "example helpline")  # non-2xx → DeliveryFailure
    return SendResult(status_code=response.status_code)


@hookimpl
def helpline_open(site, conversation, http):
    if site.plugin != KIND:
        return None  # another plugin's site
    return _post(site, http, {"event": "open", "session_id": conversation.id,
                              "client": conversation.client_pseudonym})


@hookimpl
def helpline_send_message(site, conversation, message, http):
    if site.plugin != KIND:
        return None
    return _post(site, http, {"event": "message", "session_id": conversation.id,
                              "message_id": message.id, "text": message.text})


@hookimpl
def helpline_close(site, conversation, closed_by, http):
    if site.plugin != KIND:
        return None
    return _post(site, http, {"event": "close", "session_id": conversation.id,
                              "closed_by": closed_by})


@hookimpl
def helpline_check(site, http):
    if site.plugin != KIND:
        return None
    try:
        _post(site, http, {"event": "ping"})
    except DeliveryFailure as failure:
        return CheckResult(ok=False, detail=failure.reason)
    return CheckResult(ok=True, detail="ping accepted")
