"""The core's side of the plugin contract: one call to a site's helpline, with the
rules every kind shares.

The core finds the kind (``kinds[site.plugin]``), lets a plugin override its client
for one site (``helpline_client``), and before, around and after the call applies what
no plugin should have to: a delivery to a site whose secrets are unset is held (never
a permanent failure, never a call with an empty credential: see ``held``); timeouts,
connection and TLS errors are retryable; a 401/403 means our credentials were
refused, so the client refreshes them (if it can) and the call is made once more, and
a second refusal is a site problem, retried with a long backoff. Only answers that say
the request itself is unacceptable stay permanent. The client only builds the request
and judges the answer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

import requests

from plugins.http import transport_errors_retryable
from plugins.types import (
    CheckResult,
    ConversationView,
    CredentialsExpired,
    DeliveryFailure,
    HelplineClient,
    HelplineKind,
)

from ..sites import Site
from ..state import AdapterState
from ..views import site_view
from .held import SiteHeld

log = logging.getLogger(__name__)

REQUIRED = ("open", "send_message", "close")
OPTIONAL = ("acknowledge", "create_case", "check", "attach_transcript", "send_message_parts")
CREDENTIALS_REFUSED = (401, 403)
#: How long a site problem (refused credentials) waits before a retry.
SITE_PROBLEM_RETRY_SECONDS = 60.0


class NotSupported(DeliveryFailure):
    """The kind does not implement this optional step: not a transient failure."""

    def __init__(self, kind: str, step: str) -> None:
        super().__init__(f"the {kind} helpline kind does not support {step}", retryable=False)


def kind_of(state: AdapterState, site: Site) -> HelplineKind:
    return state.kinds[site.plugin]  # a site loads only with a known kind


def supports(state: AdapterState, site: Site, step: str) -> bool:
    return step in REQUIRED or step in _client_class(state, site).supports


def _client_class(state: AdapterState, site: Site) -> type[HelplineClient]:
    kind = kind_of(state, site)
    override = state.pm.hook.helpline_client(site=site, kind=kind)
    return override or kind.client


def call(state: AdapterState, site: Site, step: str, http: requests.Session,
         **arguments: Any) -> Any:
    """Make ``step`` (``open``, ``send_message``, ...) at ``site``'s helpline."""
    if step not in REQUIRED + OPTIONAL:
        raise DeliveryFailure(f"unknown helpline step {step!r}", retryable=False)
    cls = _client_class(state, site)
    if step in OPTIONAL and step not in cls.supports:
        raise NotSupported(site.plugin, step)
    problem = site.problem_for("helpline")
    if problem:
        raise SiteHeld(problem)
    client = cls(site_view(site), http)
    _remember_progress(arguments)
    try:
        return _guarded(getattr(client, step), arguments)
    except DeliveryFailure as failure:
        if not _refuses_credentials(failure):
            raise
        if "refresh_credentials" in cls.supports:
            log.info("helpline.credentials_refreshed", extra={"site": site.code})
            client.refresh_credentials()
            try:
                return _guarded(getattr(client, step), arguments)
            except DeliveryFailure as again:
                if not _refuses_credentials(again):
                    raise
                failure = again
        raise _credentials_refused(site, failure) from failure


def _remember_progress(arguments: dict[str, Any]) -> None:
    """A step saving progress (a case, a message in parts) is given, when it is made
    again after fresh credentials, the progress it saved, not the one it began with: no
    step the helpline already accepted is made twice."""
    save = arguments.get("save_progress")
    if save is None:
        return

    def save_and_remember(progress: Any) -> None:
        save(progress)
        arguments["progress"] = progress

    arguments["save_progress"] = save_and_remember


def _refuses_credentials(failure: DeliveryFailure) -> bool:
    """A 401/403, or a client saying so its own way (a 200 whose body is an error)."""
    return isinstance(failure, CredentialsExpired) or failure.status_code in CREDENTIALS_REFUSED


def check(state: AdapterState, site: Site, http: requests.Session) -> CheckResult | None:
    """``sites check`` of one site's helpline; ``None`` when the kind has no live check."""
    if not supports(state, site, "check"):
        return None
    try:
        return call(state, site, "check", http)
    except DeliveryFailure as failure:
        return CheckResult(ok=False, detail=failure.reason)


def queue_positions(state: AdapterState, site: Site, views: list[ConversationView],
                    http: requests.Session, deadline: float) -> dict[str, int | None]:
    """Where each waiting conversation stands in the helpline's queue (1: next), by our
    session id, asked of the kind's optional ``queue_position`` step all at once and
    waited for at most ``deadline`` seconds. Not supported, held, failed, late or not an
    integer ≥ 1: None. Never raises: a ``still_waiting`` event must go all the same."""
    positions: dict[str, int | None] = {view.id: None for view in views}
    cls = _client_class(state, site)
    if not views or "queue_position" not in cls.supports or site.problem_for("helpline"):
        return positions
    client = cls(site_view(site), http)
    pool = ThreadPoolExecutor(max_workers=min(len(views), 8),
                              thread_name_prefix="queue-position")
    asked = {pool.submit(_position_of, client, site, view): view.id for view in views}
    done, late = wait(asked, timeout=deadline)
    pool.shutdown(wait=False, cancel_futures=True)
    for future in done:
        positions[asked[future]] = future.result()
    if late:
        log.warning("helpline.queue_position_late", extra={"site": site.code,
                                                           "count": len(late)})
    return positions


def _position_of(client: HelplineClient, site: Site, view: ConversationView) -> int | None:
    try:
        position = transport_errors_retryable(client.queue_position)(view)
    except DeliveryFailure as failure:
        log.warning("helpline.queue_position_failed", extra={
            "site": site.code, "conversation_id": view.id, "status_code": failure.status_code})
        if _refuses_credentials(failure) and "refresh_credentials" in client.supports:
            client.refresh_credentials()  # the next pass logs in afresh
        return None
    except Exception as exc:  # a plugin's bug must not stop the event
        log.warning("helpline.queue_position_error", extra={
            "site": site.code, "conversation_id": view.id, "error_type": type(exc).__name__})
        return None
    if isinstance(position, bool) or not isinstance(position, int) or position < 1:
        return None
    return position


def _guarded(step: Callable, arguments: dict[str, Any]) -> Any:
    result = transport_errors_retryable(step)(**arguments)
    if result is None:
        raise DeliveryFailure(f"the helpline client's {step.__name__} returned nothing",
                              retryable=False)
    return result


def _credentials_refused(site: Site, failure: DeliveryFailure) -> DeliveryFailure:
    log.warning("helpline.credentials_refused",
                extra={"site": site.code, "status_code": failure.status_code})
    return DeliveryFailure(
        f"{failure.reason}: the helpline refused our credentials (a site problem: "
        "check them with 'sites check')", retryable=True, status_code=failure.status_code,
        retry_after=max(failure.retry_after or 0.0, SITE_PROBLEM_RETRY_SECONDS))
