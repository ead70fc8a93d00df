"""The webhook plugin's hook implementations: signed JSON events to one URL."""

from __future__ import annotations

from typing import Any

from plugins import hookimpl
from plugins.config import require_configured
from plugins.http import check_response, json_body, transport_errors_retryable
from plugins.types import CaseProgress, CheckResult, DeliveryFailure, HelplineKind, SendResult

from . import signing, wire
from .config import KIND, WebhookConfig, validate_config


def _ours(site) -> bool:
    return site.plugin == KIND


@transport_errors_retryable
def _send(site, http, webhook_id: str, payload: dict[str, Any], what: str) -> SendResult:
    """POST one signed event. ``webhook_id`` is stable, so the helpline can dedupe retries."""
    require_configured(site)
    body = signing.encode(payload)
    headers = signing.signed_headers(site.helpline["secret"], webhook_id, body)
    response = http.post(site.helpline["url"], data=body.encode("utf-8"), headers=headers)
    check_response(response, what)
    answer = json_body(response, what) if response.content else {}
    answer = answer if isinstance(answer, dict) else {}
    reference = answer.get("reference")
    return SendResult(status_code=response.status_code,
                      reference=str(reference) if reference is not None else None,
                      delivered=bool(answer.get("delivered")))


@hookimpl(trylast=True)
def register_helpline_kinds():
    return [HelplineKind(name=KIND, config_schema=WebhookConfig, supports_acks=True,
                         description="Generic JSON helpline, Standard Webhooks signatures")]


@hookimpl(trylast=True)
def validate_site(site):
    return validate_config(dict(site.helpline)) if _ours(site) else None


@hookimpl(trylast=True)
def register_site_routes():
    from .callbacks import blp

    return [(KIND, blp)]


@hookimpl(trylast=True)
def helpline_open(site, conversation, http):
    if not _ours(site):
        return None
    return _send(site, http, f"open_{conversation.id}", wire.opened(site.code, conversation),
                 "webhook open")


@hookimpl(trylast=True)
def helpline_send_message(site, conversation, message, http):
    if not _ours(site):
        return None
    if message is None:
        raise DeliveryFailure("message not found", retryable=False)
    return _send(site, http, f"msg_{message.id}", wire.message(conversation, message),
                 "webhook message")


@hookimpl(trylast=True)
def helpline_close(site, conversation, closed_by, http):
    if not _ours(site):
        return None
    return _send(site, http, f"close_{conversation.id}", wire.closed(conversation, closed_by),
                 "webhook close")


@hookimpl(trylast=True)
def helpline_acknowledge(site, conversation, message, status, http):
    if not _ours(site):
        return None
    if message is None:
        raise DeliveryFailure("message not found", retryable=False)
    return _send(site, http, f"ack_{message.id}_{status}",
                 wire.acknowledged(conversation, message, status), "webhook ack")


@hookimpl(trylast=True)
def helpline_create_case(site, case, progress, http):
    """One signed request; ``webhook-id`` is stable per case, so a retry is deduplicated.

    The helpline's ``{"reference": ...}`` answer is its case id; a 2xx without one still
    means it has the case (it is recorded as created, with no reference).
    """
    if not _ours(site):
        return None
    if "case" in progress.steps:
        return progress
    result = _send(site, http, f"case_{case.id}", wire.case_opened(site.code, case),
                   "webhook case")
    return CaseProgress(steps={"case": result.reference or ""}, reference=result.reference)


@hookimpl(trylast=True)
def helpline_events_from_callback(site, action, payload, headers):
    return wire.events(action, payload) if _ours(site) else None


@hookimpl(trylast=True)
def helpline_check(site, http):
    """A signed ``ping``: a 2xx says the helpline is up and accepts our signature."""
    if not _ours(site):
        return None
    import secrets

    try:
        _send(site, http, f"ping_{secrets.token_hex(8)}", wire.envelope("ping", {}),
              "webhook ping")
    except DeliveryFailure as failure:
        return CheckResult(ok=False, detail=f"{site.helpline['url']}: {failure.reason}")
    return CheckResult(ok=True, detail=f"{site.helpline['url']}: signed ping accepted")
