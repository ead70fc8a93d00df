"""The OpenCHS plugin's hook implementations.

Every hook answers ``None`` for sites of other kinds. All are ``trylast`` so a
country's own plugin can take over one step (say, case creation) for its site.
"""

from __future__ import annotations

from plugins import hookimpl
from plugins.config import require_configured
from plugins.http import transport_errors_retryable
from plugins.types import CheckResult, DeliveryFailure, HelplineKind, SendResult

from . import cases, client, wire
from .config import KIND, OpenCHSConfig, validate_config


def _ours(site) -> bool:
    return site.plugin == KIND


@hookimpl(trylast=True)
def register_helpline_kinds():
    return [HelplineKind(name=KIND, config_schema=OpenCHSConfig,
                         description="OpenCHS helpline API (token, msg/, callbacks)")]


@hookimpl(trylast=True)
def validate_site(site):
    return validate_config(dict(site.helpline)) if _ours(site) else None


@hookimpl(trylast=True)
def register_site_routes():
    from .callbacks import blp

    return [(KIND, blp)]


def _body(site, conversation, *, message_id: str, text: str, when) -> dict[str, str]:
    """A ``msg/`` body for this conversation: our id is the helpline's session id."""
    helpline = site.helpline
    return wire.message_body(helpline, session_id=conversation.id, message_id=message_id,
                             sender=wire.client_address(helpline, conversation), text=text,
                             when=when)


@transport_errors_retryable
def _post_message(site, http, body) -> SendResult:
    require_configured(site)
    response = client.post(site.code, site.helpline, http, "msg/", body, "openchs msg")
    return SendResult(status_code=response.status_code)


@hookimpl(trylast=True)
def helpline_open(site, conversation, http):
    """OpenCHS has no "open" call: the first message starts the chat. A site may send a notice."""
    if not _ours(site):
        return None
    notice = site.helpline.get("opening_notice")
    if not notice:
        return SendResult()
    body = _body(site, conversation, message_id=f"{conversation.id}/open", text=notice,
                 when=conversation.created_at)
    return _post_message(site, http, body)


@hookimpl(trylast=True)
def helpline_send_message(site, conversation, message, http):
    if not _ours(site):
        return None
    if message is None:
        raise DeliveryFailure("message not found", retryable=False)
    text = wire.text_with_attachments(message.text, message.attachments)
    body = _body(site, conversation, message_id=message.id, text=text, when=message.created_at)
    return _post_message(site, http, body)


@hookimpl(trylast=True)
def helpline_close(site, conversation, closed_by, http):
    """No close endpoint exists on the helpline: the counsellor sees a closing notice."""
    if not _ours(site):
        return None
    helpline = site.helpline
    text = helpline["timeout_notice"] if closed_by == "timeout" else helpline["closing_notice"]
    if not text:
        return SendResult()
    body = _body(site, conversation, message_id=f"{conversation.id}/close", text=text,
                 when=conversation.closed_at)
    return _post_message(site, http, body)


@hookimpl(trylast=True)
def helpline_create_case(site, case, progress, save_progress, http):
    if not _ours(site):
        return None
    require_configured(site)
    return transport_errors_retryable(cases.create_case)(
        site.code, site.helpline, case, progress, save_progress, http)


@hookimpl(trylast=True)
def helpline_events_from_callback(site, action, payload, headers):
    return wire.events(action, payload) if _ours(site) else None


@hookimpl(trylast=True)
def helpline_check(site, http):
    """Log in afresh (never from the cache): proves reachability and the credentials."""
    if not _ours(site):
        return None
    try:
        transport_errors_retryable(client.fetch_token)(site.code, site.helpline, http)
    except DeliveryFailure as failure:
        return CheckResult(ok=False, detail=f"{site.helpline['base_url']}: {failure.reason}")
    return CheckResult(ok=True, detail=f"{site.helpline['base_url']}: login accepted")
