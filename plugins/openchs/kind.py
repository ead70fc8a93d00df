"""The OpenCHS helpline kind: what the core calls for a site with ``plugin = "openchs"``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from plugins.api import (
    CaseProgress,
    CaseView,
    CheckResult,
    ConversationView,
    HelplineClient,
    HelplineKind,
    MessageView,
    SendResult,
    Transcript,
    check_response,
    json_body,
)

from . import cases, client, wire
from .callbacks import CALLBACKS, LOGIN
from .config import KIND, OpenCHSConfig, validate_config


class OpenCHSClient(HelplineClient):
    """Every call is a ``msg/`` post (OpenCHS has no open or close call: the first
    message starts the chat, and a close is a notice the counsellor reads)."""

    supports = frozenset({"create_case", "check", "refresh_credentials", "reopen",
                          "attach_transcript", "queue_position", "send_message_parts"})

    def _post(self, conversation: ConversationView, *, message_id: str, text: str,
              when, mime: str | None = None) -> SendResult:
        body = wire.message_body(self.config, session_id=conversation.id,
                                 message_id=message_id, sender=wire.client_address(conversation),
                                 text=text, when=when, mime=mime)
        response = client.post(self.site.code, self.config, self.http, "msg/", body,
                               "openchs msg")
        try:
            reference = wire.created_id(response.json(), "msg")
        except ValueError:
            reference = None
        return SendResult(status_code=response.status_code, reference=reference)

    def open(self, conversation: ConversationView) -> SendResult:
        """The opening notice, if the site has one; a return always tells the counsellor
        (the same session's ``src_callid`` again: OpenCHS shows it in the same chat)."""
        if conversation.returning:
            notice = self.config["return_notice"]
            if conversation.previous_session_id:
                notice += f" (earlier session {conversation.previous_session_id})"
            return self._post(conversation, text=notice, when=None,
                              message_id=f"{conversation.id}/return/{conversation.reopen_count}")
        notice = self.config.get("opening_notice")
        if not notice:
            return SendResult()
        return self._post(conversation, message_id=f"{conversation.id}/open", text=notice,
                          when=conversation.created_at)

    def send_message(self, conversation: ConversationView, message: MessageView) -> SendResult:
        text = wire.text_with_attachments(message.text, list(message.attachments))
        return self._post(conversation, message_id=message.id, text=text,
                          when=message.created_at)

    def send_message_parts(self, conversation: ConversationView, message: MessageView,
                           progress: CaseProgress,
                           save_progress: Callable[[CaseProgress], None]) -> SendResult:
        """The text, then one ``msg/`` per attachment (``mime`` its content type, the URL
        as ``message``). OpenCHS stores every POST, so a part it accepted is saved at once
        and never sent again: a retry resumes at the first part not yet accepted."""
        steps = dict(progress.steps)
        result = SendResult()
        for part in wire.message_parts(message):
            if part.step in steps:
                continue
            result = self._post(conversation, message_id=part.message_id, text=part.text,
                                when=message.created_at, mime=part.mime)
            steps[part.step] = result.reference or "sent"
            save_progress(CaseProgress(steps=dict(steps)))
        return SendResult(status_code=result.status_code)

    def close(self, conversation: ConversationView, closed_by: str) -> SendResult:
        text = self.config["timeout_notice"] if closed_by == "timeout" \
            else self.config["closing_notice"]
        if not text:
            return SendResult()
        return self._post(conversation, message_id=f"{conversation.id}/close", text=text,
                          when=conversation.closed_at)

    def create_case(self, case: CaseView, progress: CaseProgress,
                    save_progress: Callable[[CaseProgress], None]) -> CaseProgress:
        return cases.create_case(self.site.code, self.config, case, progress, save_progress,
                                 self.http)

    def attach_transcript(self, case: CaseView, reference: str,
                          transcript: Transcript) -> SendResult:
        return cases.attach_transcript(self.site.code, self.config, case, reference,
                                       transcript, self.http)

    def check(self) -> CheckResult:
        """Log in afresh (never from the cache): proves reachability and the credentials."""
        client.fetch_token(self.site.code, self.config, self.http)
        return CheckResult(ok=True, detail=f"{self.config['base_url']}: login accepted")

    def queue_position(self, conversation: ConversationView) -> int | None:
        """The hunting daemon's position of the chat (``helpline.hunting_url``, when the
        site has one): 1 is next. Unknown to it (404) or no longer hunting: None."""
        url = self.config.get("hunting_url")
        if not url:
            return None
        response = client.get(self.site.code, self.config, self.http, url,
                              {"session_id": conversation.id}, "openchs hunting")
        if response.status_code == 404:
            return None
        check_response(response, "openchs hunting")
        return wire.queue_position(json_body(response, "openchs hunting"))

    def refresh_credentials(self) -> None:
        client.tokens.forget(self.site.code, self.config)


def _shares_contact(helpline: Mapping[str, Any]) -> bool:
    return helpline.get("address") == "contact"


def _shares_phone(helpline: Mapping[str, Any]) -> bool:
    return bool((helpline.get("case") or {}).get("share_phone"))


OPENCHS = HelplineKind(
    name=KIND, config_schema=OpenCHSConfig, client=OpenCHSClient,
    description="OpenCHS helpline API (token, msg/, callbacks)",
    shares_contact=_shares_contact, shares_phone=_shares_phone,
    check_config=validate_config, events=wire.events,
    callbacks=CALLBACKS, token_login=LOGIN)
