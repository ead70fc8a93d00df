"""The ``rehost`` delivery: fetch a message's attachments, store them, then send the
message on to the helpline with the re-hosted links (``docs/attachments.md``).

Opt-in per site (``[attachments.rehost]``). Each attachment's outcome is saved in the
delivery's progress as soon as it is known (as a message in parts is), so a retry
fetches only what is still missing. A download that may succeed later (a timeout, a
5xx) is retried like any delivery; one that never will (too large, a type the site
does not take, a private address) is given up at once, and the counsellor is told in
the message's text that an attachment could not be passed on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from plugins.types import DeliveryFailure, SendResult

from .. import media_store
from ..api.fields import attachment_url
from ..extensions import db
from ..media_fetch import FetchRefused, FetchRules, fetch
from ..models import Conversation, Delivery, Message
from ..outbox import HELPLINE, add_delivery
from ..sites import Site
from .pacing import NotYet

log = logging.getLogger(__name__)

STORED, REFUSED = "stored:", "refused:"


def rules_of(site: Site, longest_call: float) -> FetchRules:
    """The site's rules, its total time capped at ``longest_call``: the most one call may
    take and still end within the worker's lease (``engine._lease_deadline``)."""
    rehost = site.attachments.rehost
    return FetchRules(max_bytes=rehost.max_bytes, connect_timeout=rehost.connect_timeout,
                      read_timeout=rehost.read_timeout,
                      total_timeout=min(rehost.total_timeout, longest_call),
                      max_redirects=rehost.max_redirects,
                      unsafe_allow_private_hosts=rehost.unsafe_allow_private_hosts)


def prepare_rehost(site: Site, delivery: Delivery, longest_call: float,
                   ) -> Callable[[], SendResult]:
    """The call that fetches and stores the next attachment not yet done; it commits the
    outcome, so it runs in the worker's main thread (``saves_progress``). One attachment
    per call, so each call fits the lease: with more left, the delivery goes back
    (``NotYet``, no attempt counted) and the next batch takes the next one."""
    rehost = site.attachments.rehost
    if not rehost.enabled or not rehost.directory:
        raise DeliveryFailure("the site no longer re-hosts attachments", retryable=False)
    originals = list((delivery.params or {}).get("attachments") or ())
    rules = rules_of(site, longest_call)

    def call() -> SendResult:
        steps = dict((delivery.progress or {}).get("steps") or {})
        pending = [index for index in range(len(originals)) if str(index) not in steps]
        for index in pending[:1]:
            key, stored = str(index), originals[index]
            try:
                fetched = fetch(attachment_url(stored), rules, site.attachments.refusal)
            except FetchRefused as refused:
                if refused.retryable:
                    raise DeliveryFailure(f"rehost attachment {index}: {refused.reason}",
                                          retryable=True) from None
                steps[key] = REFUSED + refused.reason
                log.warning("rehost.refused", extra={"site": site.code,
                                                     "delivery_id": delivery.id})
            else:
                token = media_store.store(rehost.directory, fetched.body,
                                          fetched.content_type, rehost.expire_hours)
                steps[key] = f"{STORED}{token}:{fetched.content_type}"
            delivery.progress = {"steps": dict(steps), "reference": None}
            db.session.commit()  # this outcome is kept, whatever happens next
        if len(pending) > 1:
            raise NotYet(0.0)  # the next attachment in a call of its own
        return SendResult()

    call.saves_progress = True
    return call


def finish(delivery: Delivery, message: Message | None, *, gave_up: str | None = None) -> None:
    """The attachments are re-hosted (or given up): rewrite ``message`` (the delivery's,
    as the batch loaded it) with the links and notices, and queue it to the helpline, at
    the end of the conversation's lane."""
    conversation = db.session.get(Conversation, delivery.conversation_id) \
        if delivery.conversation_id else None
    if message is None or conversation is None:
        return
    from ..protocol import sites

    site = sites().get(delivery.site)
    base = site.attachments.rehost.public_url if site is not None else None
    steps = (delivery.progress or {}).get("steps") or {}
    links, notices = [], []
    for index in range(len((delivery.params or {}).get("attachments") or ())):
        outcome = steps.get(str(index))
        if outcome and outcome.startswith(STORED) and base:
            token, _, content_type = outcome[len(STORED):].partition(":")
            links.append(f"{content_type}:{base}{token}" if content_type else base + token)
        else:
            why = outcome[len(REFUSED):] if outcome and outcome.startswith(REFUSED) \
                else (gave_up or "it could not be fetched")
            notices.append(f"[an attachment could not be passed on: {why}]")
    message.attachments = links or None
    message.text = "\n".join(notices) or None
    if not links and not notices:
        return
    add_delivery(site=delivery.site, target=HELPLINE, action="message",
                 conversation=conversation, message_id=message.id)
