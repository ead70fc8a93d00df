"""The webhook helpline kind: signed JSON events (Standard Webhooks) to one URL."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from typing import Any

from plugins.api import (
    CaseProgress,
    CaseView,
    CheckResult,
    ConversationView,
    HelplineClient,
    HelplineEvent,
    HelplineKind,
    MessageView,
    SendResult,
    Transcript,
    check_response,
    json_body,
)

from . import signing, wire
from .callbacks import CALLBACKS, authenticate
from .config import KIND, WebhookConfig, validate_config


class WebhookClient(HelplineClient):
    """Every step is one signed POST. Its ``webhook-id`` is stable per step and record,
    so a helpline that deduplicates by it (as Standard Webhooks asks) sees a retry once."""

    supports = frozenset({"acknowledge", "create_case", "check", "reopen",
                          "attach_transcript"})

    def _send(self, webhook_id: str, payload: dict[str, Any], what: str) -> SendResult:
        body = signing.encode(payload)
        headers = signing.signed_headers(self.config["secret"], webhook_id, body)
        response = self.http.post(self.config["url"], data=body.encode("utf-8"),
                                  headers=headers)
        check_response(response, what)
        answer = json_body(response, what) if response.content else {}
        answer = answer if isinstance(answer, dict) else {}
        reference = answer.get("reference")
        return SendResult(status_code=response.status_code,
                          reference=str(reference) if reference is not None else None,
                          delivered=bool(answer.get("delivered")))

    def open(self, conversation: ConversationView) -> SendResult:
        # A return opens the same session again: a webhook id of its own, or a helpline
        # deduplicating by it would drop the return as a repeat of the first open.
        webhook_id = f"open_{conversation.id}" + (
            f"_r{conversation.reopen_count}" if conversation.returning else "")
        return self._send(webhook_id, wire.opened(self.site.code, conversation),
                          "webhook open")

    def send_message(self, conversation: ConversationView, message: MessageView) -> SendResult:
        return self._send(f"msg_{message.id}", wire.message(conversation, message),
                          "webhook message")

    def close(self, conversation: ConversationView, closed_by: str) -> SendResult:
        return self._send(f"close_{conversation.id}", wire.closed(conversation, closed_by),
                          "webhook close")

    def acknowledge(self, conversation: ConversationView, message: MessageView,
                    status: str) -> SendResult:
        return self._send(f"ack_{message.id}_{status}",
                          wire.acknowledged(conversation, message, status), "webhook ack")

    def create_case(self, case: CaseView, progress: CaseProgress,
                    save_progress: Callable[[CaseProgress], None]) -> CaseProgress:
        """One signed request. The helpline's ``{"reference": ...}`` is its case id; a
        2xx without one still means it has the case (recorded with no reference)."""
        if "case" in progress.steps:
            return progress
        result = self._send(f"case_{case.id}", wire.case_opened(self.site.code, case),
                            "webhook case")
        return CaseProgress(steps={"case": result.reference or ""}, reference=result.reference)

    def attach_transcript(self, case: CaseView, reference: str,
                          transcript: Transcript) -> SendResult:
        """``case.transcript``, its webhook id the transcript's (stable per close)."""
        return self._send(f"transcript_{transcript.id}",
                          wire.case_transcript(case, reference, transcript),
                          "webhook transcript")

    def check(self) -> CheckResult:
        """A signed ``ping``: a 2xx says the helpline is up and accepts our signature."""
        self._send(f"ping_{secrets.token_hex(8)}", wire.envelope("ping", {}), "webhook ping")
        return CheckResult(ok=True, detail=f"{self.config['url']}: signed ping accepted")


def events(action: str, event: Mapping[str, Any]) -> list[HelplineEvent]:
    """The ``events/`` callback: one validated event envelope (``type``, ``data``)."""
    return wire.events(event["type"], event["data"])


WEBHOOK = HelplineKind(
    name=KIND, config_schema=WebhookConfig, client=WebhookClient,
    description="Generic JSON helpline, Standard Webhooks signatures",
    check_config=validate_config, callbacks=CALLBACKS, events=events,
    authenticate=authenticate)
