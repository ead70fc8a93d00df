"""Calls back into RapidPro: broadcasts for counsellor text, flow starts for events."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from flask import Flask
from redis.exceptions import RedisError

from plugins.http import check_response, retry_after_seconds, transport_errors_retryable
from plugins.types import DeliveryFailure, SendResult

from ... import counters
from ...api.fields import attachment_url, content_type_of
from ...delivery.helpline_calls import SITE_PROBLEM_RETRY_SECONDS
from ...delivery.pacing import NotYet
from ...extensions import db
from ...hours import after_hours_text
from ...models import Case, Conversation, Delivery, Message
from ...queueing import pacer_for
from ...sites import TEXT_KEYS, Site

log = logging.getLogger(__name__)

#: Answers that say the site is misconfigured (URL, token), not that the message is bad.
SITE_PROBLEMS = (401, 403, 404, 405)


def contact_target(conversation: Conversation | None, case: Case | None) -> dict:
    """Whom RapidPro should reach: the contact uuid, else the URN we kept."""
    holder = conversation or case
    if holder is not None and holder.contact_uuid:
        return {"contacts": [holder.contact_uuid]}
    if holder is not None and holder.contact_urn:
        return {"urns": [holder.contact_urn]}
    raise DeliveryFailure("no contact uuid or URN to reach the client", retryable=False)


def child_texts(site: Site, event: str, holder: Conversation | Case | None,
                params: dict | None = None) -> dict:
    """What a generic flow says for ``event``: the child's ``language`` (ISO 639-3, or
    null) and, when the site has one, the ``text`` in it or in the site's default
    language (``text_language`` says which). Read at send time: a text fixed in the site
    file reaches the events still queued."""
    language = getattr(holder, "language", None)
    values: dict = {"language": language}
    if event == "after_hours":  # with the next opening in it (docs/conversation.md)
        text, text_language = after_hours_text(site.texts, params or {}, language)
        if text:
            values.update(text=text, text_language=text_language)
    elif event in TEXT_KEYS:
        text, text_language = site.texts.text_for(event, language)
        if text:
            values.update(text=text, text_language=text_language)
    return values
def flow_attachments(stored: list[str] | None) -> list[str]:
    """A counsellor's attachments as a flow's Send Message action takes them:
    ``<content-type>:<url>`` (``@trigger.params.attachments.0``), the type as the helpline
    gave it or the URL's extension says, else ``application/octet-stream`` (sent as a
    document). RapidPro's broadcasts endpoint takes no such URL: its ``attachments`` must
    name media uploaded to the workspace (``MediaField`` in its API), so a broadcast
    carries the links in its text instead."""
    return [f"{content_type_of(item) or UNKNOWN_CONTENT_TYPE}:{attachment_url(item)}"
            for item in stored or ()]


#: RapidPro's limit on a flow start's ``params`` (its JSON, in characters).
MAX_PARAMS_CHARS = 10_000
#: A counsellor attachment whose type nobody told us.
UNKNOWN_CONTENT_TYPE = "application/octet-stream"


def build_request(site: Site, delivery: Delivery, conversation: Conversation | None,
                  message: Message | None) -> tuple[str, dict]:
    """The RapidPro endpoint and JSON body for a delivery."""
    rapidpro = site.rapidpro
    params = dict(delivery.params or {})
    event = params.pop("event", "message")
    case = db.session.get(Case, delivery.case_id) if delivery.case_id else None
    target = contact_target(conversation, case)
    if event == "message":
        if message is None or message.text is None:
            raise DeliveryFailure("message text is gone (purged)", retryable=False)
        if rapidpro.message_mode == "broadcasts":
            prefix = rapidpro.counsellor_prefix.format(counsellor=message.sender or "") \
                if message.sender else ""
            text = prefix + message.text
            if message.attachments:
                # Links in the text: a broadcast's own `attachments` takes only media
                # uploaded to the workspace (see flow_attachments), never a helpline's URL.
                text += "\n" + "\n".join(attachment_url(a) for a in message.attachments)
            return "broadcasts.json", {"text": text, **target}
        params.update({"text": message.text, "counsellor": message.sender,
                       "attachments": flow_attachments(message.attachments),
                       "attachment_urls": [attachment_url(a) for a in message.attachments or ()]})
    else:
        params.update(child_texts(site, event, conversation or case, params))
    flow = rapidpro.flows.get(event)
    if not flow:
        raise DeliveryFailure(f"no flow configured for event {event!r}", retryable=False)
    trigger = {"event": event, **params}
    if "attachment_urls" in trigger and len(json.dumps(trigger)) > MAX_PARAMS_CHARS:
        del trigger["attachment_urls"]  # the links are in `attachments` too; RapidPro
        # refuses params over its limit (a 400: the message would never arrive)
    body = {
        "flow": flow,
        **target,
        rapidpro.params_field: trigger,
    }
    return "flow_starts.json", body


def prepare_chatbot_call(app: Flask, site: Site, delivery: Delivery,
                         conversation: Conversation | None, message: Message | None,
                         http) -> Callable[[], SendResult]:
    """Everything that reads the database or paces, done now; the returned call only
    talks HTTP, so a worker may run several at once in threads."""

    rapidpro = site.rapidpro
    if rapidpro is None:
        raise DeliveryFailure("the site has no [rapidpro] settings", retryable=False)
    if not rapidpro.token:
        raise DeliveryFailure("the site's RapidPro token is not set", retryable=True)
    endpoint, body = build_request(site, delivery, conversation, message)
    try:
        pacer = pacer_for(app, "helpline-adapter:pace:")
        wait = pacer.reserve(rapidpro.org_key, rapidpro.rate_per_hour)
    except RedisError:
        pacer, wait = None, 0.0  # pacing is best effort; RapidPro's 429 still protects
    if wait > 0:
        counters.count(app, "rapidpro_pacing_waits", site.code)
        raise NotYet(wait)
    url = f"{rapidpro.api_root}/{endpoint}"
    headers = {
        "Authorization": f"Token {rapidpro.token}",
        "Idempotency-Key": f"delivery-{delivery.id}",
        "X-Request-Id": f"delivery-{delivery.id}",
    }

    @transport_errors_retryable
    def call() -> SendResult:
        response = http.post(url, json=body, headers=headers)
        if response.status_code == 429:
            counters.count(app, "rapidpro_throttled", site.code)
        if response.status_code == 429 and pacer is not None:
            pause = retry_after_seconds(response.headers.get("Retry-After")) or 60.0
            try:
                pacer.block(rapidpro.org_key, pause)
            except RedisError as exc:  # the delivery's own retry still waits for it
                log.warning("rapidpro.block_failed",
                            extra={"error_type": type(exc).__name__})
        if response.status_code in SITE_PROBLEMS:
            # A wrong URL or token, not a bad message: keep the child's message and try
            # again after a while (an operator fixes the site; `sites check` names it).
            log.warning("rapidpro.site_problem", extra={"site": site.code,
                                                        "status_code": response.status_code})
            raise DeliveryFailure(
                f"rapidpro {endpoint}: HTTP {response.status_code} (a site problem: check "
                "[rapidpro] base_url and token)", retryable=True,
                status_code=response.status_code, retry_after=SITE_PROBLEM_RETRY_SECONDS)
        if response.status_code == 400 and "flow" in _field_errors(response):
            # "No such object": the flow the site names is not in the workspace. The
            # event is fine; the site's [rapidpro.flows] is wrong. Keep it until fixed.
            log.warning("rapidpro.flow_missing", extra={"site": site.code,
                                                        "delivery_id": delivery.id})
            raise DeliveryFailure(
                f"rapidpro {endpoint}: HTTP 400 on the flow (a site problem: the flow "
                "is not in the workspace; check [rapidpro.flows] with 'sites check')",
                retryable=True, status_code=400, retry_after=SITE_PROBLEM_RETRY_SECONDS)
        check_response(response, f"rapidpro {endpoint}")
        return SendResult(status_code=response.status_code)

    return call


def _field_errors(response) -> dict:
    """RapidPro's 400 body: field name → messages (anything else: empty)."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
