"""A helpline kind for core tests: a site whose helpline is a URL we run ourselves.

It is a real plugin (registered like a third-party one), so the core is exercised
through the same hooks as OpenCHS; it posts JSON to ``[helpline] url``.
"""

from __future__ import annotations

from marshmallow import Schema, fields

from plugins import hookimpl
from plugins.http import check_response, transport_errors_retryable
from plugins.types import HelplineKind, SendResult

KIND = "loopback"


class LoopbackConfig(Schema):
    url = fields.String(required=True)


@hookimpl
def register_helpline_kinds():
    return [HelplineKind(name=KIND, config_schema=LoopbackConfig, supports_acks=True)]


def _post(site, http, body):
    response = http.post(site.helpline["url"], json=body)
    check_response(response, "loopback")
    return SendResult(status_code=response.status_code)


@hookimpl
@transport_errors_retryable
def helpline_open(site, conversation, http):
    if site.plugin != KIND:
        return None
    return _post(site, http, {"action": "open", "session_id": conversation.id})


@hookimpl
@transport_errors_retryable
def helpline_send_message(site, conversation, message, http):
    if site.plugin != KIND:
        return None
    return _post(site, http, {"action": "message", "session_id": conversation.id,
                              "message_id": message.id, "text": message.text})


@hookimpl
@transport_errors_retryable
def helpline_close(site, conversation, closed_by, http):
    if site.plugin != KIND:
        return None
    return _post(site, http, {"action": "close", "session_id": conversation.id,
                              "closed_by": closed_by})


@hookimpl
@transport_errors_retryable
def helpline_acknowledge(site, conversation, message, status, http):
    if site.plugin != KIND:
        return None
    return _post(site, http, {"action": "ack", "session_id": conversation.id,
                              "message_id": message.id, "status": status})
