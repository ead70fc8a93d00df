"""Small typed values that cross the boundary between the core and the plugins."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from marshmallow import Schema

if TYPE_CHECKING:
    import requests


def _never(helpline: Mapping[str, Any]) -> bool:
    return False


def _no_problems(helpline: Mapping[str, Any]) -> list[str]:
    return []


@dataclass(frozen=True)
class HelplineKind:
    """A kind of helpline: its name (a site file's ``plugin``), the schema of a site's
    ``[helpline]`` table, and the :class:`HelplineClient` the core calls it with.

    What a kind may learn about the child is declared here, per site config, and the
    core fills the views accordingly (the default shares nothing but pseudonyms):
    ``shares_contact`` gives the helpline the chatbot's contact (uuid, or the URN's
    address) in :attr:`ConversationView.contact`; ``shares_phone`` gives a case the
    client's URN in :attr:`CaseView.urn`.
    """

    name: str
    config_schema: type[Schema]
    client: type[HelplineClient]
    description: str = ""
    shares_contact: Callable[[Mapping[str, Any]], bool] = _never
    shares_phone: Callable[[Mapping[str, Any]], bool] = _never
    #: Rules across a ``[helpline]`` table's keys: problems as ``"helpline.<key>: ..."``.
    check_config: Callable[[Mapping[str, Any]], list[str]] = _no_problems
    #: The routes the helpline calls, mounted by the core (see :class:`Callback`).
    callbacks: tuple[Callback, ...] = ()
    #: A validated callback (``action``, ``payload``) as protocol events.
    events: Callable[[str, Mapping[str, Any]], list[HelplineEvent]] | None = None
    #: How a callback proves it comes from the site's helpline, checked by the core
    #: before the body is read: raise :class:`CallbackRefused` (a 401) to refuse it.
    authenticate: Callable[[SiteView, CallbackRequest], None] | None = None
    #: Or: the helpline logs in for a time-bound token (the core serves the login).
    token_login: TokenLogin | None = None

    def __post_init__(self) -> None:
        if not self.callbacks:
            return
        if self.events is None:
            raise ValueError(f"helpline kind {self.name!r}: callbacks need events")
        if (self.authenticate is None) == (self.token_login is None):
            raise ValueError(f"helpline kind {self.name!r}: callbacks need exactly one of "
                             "authenticate or token_login")
        actions = [callback.action for callback in self.callbacks]
        if len(set(actions)) != len(actions):
            raise ValueError(f"helpline kind {self.name!r}: a callback action twice")

    @property
    def supports_acks(self) -> bool:
        return "acknowledge" in self.client.supports


@dataclass(frozen=True)
class Callback:
    """A route a kind's helpline calls, mounted by the core at
    ``/v1/sites/<site>/<kind>/<path>`` (``path`` in Flask's syntax: ``message/``,
    ``chat/<session_id>/close/``).

    The core authenticates the call (the kind's ``authenticate`` or ``token_login``)
    before reading the body, validates the JSON body with ``schema`` (a 400 naming each
    field), adds the path's arguments to it, asks the kind's ``events(action, payload)``
    what it means, applies those events through the conversation protocol (a repeat,
    by message id or ``Idempotency-Key``, changes nothing and gets the first answer)
    and answers ``{status, conversation_id, message_id}``: 201 for a new counsellor
    message, 200 otherwise.
    """

    action: str
    path: str
    schema: type[Schema]
    summary: str = ""
    description: str = ""


@dataclass(frozen=True)
class TokenLogin:
    """Callbacks authenticated by a token the helpline gets by logging in.

    The core serves ``POST <path>`` (``{"username", "password"}`` → ``{"token"}``),
    compares both in constant time with the site's ``[helpline]`` keys named here,
    limits failed logins, and then accepts ``Authorization: Token <token>`` (or
    ``Bearer``) on the kind's callbacks for ``ttl_key`` seconds.
    """

    username_key: str = "callback_username"
    password_key: str = "callback_password"  # noqa: S105 (a key name, not a secret)
    ttl_key: str = "callback_token_ttl"
    path: str = "token/"


@dataclass(frozen=True)
class CallbackRequest:
    """What ``authenticate`` may look at: the raw body (before parsing) and the headers."""

    body: bytes
    headers: Mapping[str, str]


class CallbackRefused(Exception):
    """Raised by ``authenticate``: not the site's helpline (the core answers 401)."""


@dataclass(frozen=True)
class SendResult:
    """What the helpline said to an outbound call that succeeded."""

    status_code: int | None = None
    reference: str | None = None  # the helpline's id for what we sent, if it gave one
    delivered: bool = False  # the helpline acknowledged delivery in the same answer


class DeliveryFailure(Exception):
    """An outbound call failed. ``retryable`` says whether trying again may help."""

    def __init__(
        self,
        reason: str,
        *,
        retryable: bool,
        status_code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.status_code = status_code
        self.retry_after = retry_after


class CredentialsExpired(DeliveryFailure):
    """The far side no longer takes our session or credentials, however it said so (a
    403, or a 200 whose body is an error): the core refreshes them (``refresh_credentials``)
    and calls once more, as it does on a 401."""

    def __init__(self, reason: str, *, status_code: int | None = None) -> None:
        super().__init__(reason, retryable=True, status_code=status_code)


@dataclass(frozen=True)
class CaseProgress:
    """Where a multi-step call stands (a case's creation, a message sent in parts); saved
    after every step so a retry resumes."""

    steps: Mapping[str, str] = field(default_factory=dict)  # step name → helpline id
    reference: str | None = None  # the helpline's case id once created


#: The same record for a message sent in parts (``send_message_parts``): ``steps`` maps
#: each part's id (``text``, ``1``, ``2``) to what the helpline said of it.
Progress = CaseProgress


# ---- Events parsed from a helpline's callbacks -------------------------------------

#: What an :class:`Acknowledgement` may say of a client message.
ACK_STATUSES = ("delivered", "read", "failed")


@dataclass(frozen=True)
class ConversationRef:
    """How a callback names a conversation: our session id, or the client address we sent."""

    session_id: str | None = None
    client_address: str | None = None


@dataclass(frozen=True)
class CounsellorMessage:
    ref: ConversationRef
    text: str
    message_id: str | None = None
    counsellor: str | None = None
    attachments: tuple[str, ...] = ()


@dataclass(frozen=True)
class Acknowledgement:
    """The helpline acknowledges a client message (``delivered``/``read``/``failed``)."""

    ref: ConversationRef
    message_id: str
    status: str


@dataclass(frozen=True)
class Assignment:
    ref: ConversationRef
    counsellor: str | None = None


@dataclass(frozen=True)
class HelplineClose:
    ref: ConversationRef
    reason: str | None = None
    counsellor: str | None = None


HelplineEvent = CounsellorMessage | Acknowledgement | Assignment | HelplineClose


@dataclass(frozen=True)
class CheckResult:
    """``sites check``: is the helpline reachable, and are our credentials accepted?"""

    ok: bool
    detail: str



# ---- What a plugin is given: views of the core's records, never its database rows ------


@dataclass(frozen=True)
class SiteView:
    code: str
    name: str
    helpline: Mapping[str, Any]  # the site's ``[helpline]`` table, validated, secrets resolved


@dataclass(frozen=True)
class ConversationView:
    id: str  # ours: the session id the helpline knows the conversation by
    site: str
    client: str  # the client's pseudonym, the address the helpline sees
    contact: str | None  # the chatbot's contact, only for kinds that share it (see above)
    state: str  # requested | waiting | active | closed
    risk: str | None
    location: str | None
    counsellor: str | None  # the counsellor's pseudonym, once assigned
    created_at: datetime
    closed_at: datetime | None
    closed_by: str | None  # client | counsellor | timeout
    #: The child came back after a close (``[policies] reopen_within``): how many times.
    #: With "reopen" in the client's ``supports`` the same session opens again (``open``
    #: is called once more, with this above 0); otherwise a new session starts, and
    #: ``previous_session_id`` names the one it follows. Tell the counsellor either way.
    reopen_count: int = 0
    previous_session_id: str | None = None

    @property
    def returning(self) -> bool:
        """This open is a return of a child whose conversation had closed."""
        return self.reopen_count > 0


@dataclass(frozen=True)
class Attachment:
    """One attachment of a message: its URL, and its content type when the chatbot gave
    one or the URL's extension says it (``image/jpeg``; sometimes only ``image``)."""

    url: str  # http(s)
    content_type: str | None = None


@dataclass(frozen=True)
class MessageView:
    id: str  # ours, stable across retries: send it so the helpline can deduplicate
    sender_message_id: str  # the sender's own id (a counsellor message: the helpline's)
    conversation_id: str
    text: str | None  # None once purged by retention
    attachments: tuple[str, ...]  # http(s) URLs
    sender: str | None  # a pseudonym
    created_at: datetime
    #: The same attachments with their content types, in the same order.
    media: tuple[Attachment, ...] = ()


@dataclass(frozen=True)
class CaseView:
    id: str  # ours, stable across retries
    conversation_id: str | None
    client: str | None  # the client's pseudonym
    intake: Mapping[str, Any]  # validated intake fields (docs/cases.md)
    urn: str | None  # the client's URN, only for kinds and sites that share phone numbers
    created_at: datetime


@dataclass(frozen=True)
class TranscriptLine:
    at: datetime
    role: str  # "child" | "counsellor"
    sender: str | None  # a pseudonym, never a name
    text: str | None
    attachments: tuple[str, ...] = ()  # links, never fetched


@dataclass(frozen=True)
class Transcript:
    """A closed conversation as the case should keep it: pseudonyms only, timestamps,
    attachments as links. ``id`` is stable per close (a return closes again later):
    send it so a helpline that can deduplicate does."""

    id: str
    session_id: str
    closed_at: datetime | None
    lines: tuple[TranscriptLine, ...]

    def as_text(self) -> str:
        """One line per message: ``[2026-12-04 19:02 UTC] child-3f2a: text`` (attachment
        links on lines of their own), under a heading naming the session."""
        out = [f"--- Chat transcript (session {self.session_id}) ---"]
        for line in self.lines:
            stamp = line.at.strftime("%Y-%m-%d %H:%M UTC")
            who = line.sender or line.role
            out.append(f"[{stamp}] {who}: {line.text or ''}".rstrip())
            out += [f"    {link}" for link in line.attachments]
        return "\n".join(out)


class HelplineClient:
    """How the core talks to one site's helpline, for one delivery.

    Subclass it and implement :meth:`open`, :meth:`send_message` and :meth:`close`;
    name the optional steps you implement in :attr:`supports`. Each step returns a
    :class:`SendResult` (a case, a :class:`CaseProgress`) or raises
    :class:`DeliveryFailure`. The core has checked before the call that the site's
    secrets are set; it turns timeouts and connection errors into retryable failures,
    and a 401/403 into a credentials problem (``refresh_credentials``, once, then a
    site problem retried with a long backoff): a step only judges the answer.
    """

    #: Optional steps implemented: "acknowledge", "create_case", "check",
    #: "refresh_credentials", "attach_transcript", "queue_position",
    #: "send_message_parts". The core never calls one that is not named here. "reopen"
    #: names no step: it says the helpline can open a closed session again
    #: (:attr:`ConversationView.reopen_count`).
    supports: frozenset[str] = frozenset()

    def __init__(self, site: SiteView, http: requests.Session) -> None:
        self.site = site
        self.config = site.helpline
        self.http = http  # pooled, with the deployment's timeouts

    def open(self, conversation: ConversationView) -> SendResult:
        """A conversation starts (the client is waiting for a counsellor)."""
        raise NotImplementedError

    def send_message(self, conversation: ConversationView, message: MessageView) -> SendResult:
        """One client message; may run more than once for one message (retries)."""
        raise NotImplementedError

    def send_message_parts(self, conversation: ConversationView, message: MessageView,
                           progress: CaseProgress,
                           save_progress: Callable[[CaseProgress], None]) -> SendResult:
        """A client message with attachments, for a helpline that takes one part per call
        (text, then each attachment). Skip the parts in ``progress.steps``; call
        ``save_progress`` after each part the helpline accepted: a retry then resends none
        of them, and a crash at most the one in flight. Named in :attr:`supports` as
        ``"message_parts"``; without it, :meth:`send_message` carries the attachments."""
        raise NotImplementedError

    def close(self, conversation: ConversationView, closed_by: str) -> SendResult:
        """The chatbot side ended it (``closed_by``: client or timeout)."""
        raise NotImplementedError

    def acknowledge(self, conversation: ConversationView, message: MessageView,
                    status: str) -> SendResult:
        """The client received (``delivered``) or read (``read``) a counsellor message."""
        raise NotImplementedError

    def create_case(self, case: CaseView, progress: CaseProgress,
                    save_progress: Callable[[CaseProgress], None]) -> CaseProgress:
        """Create a case, calling ``save_progress`` after each step: a retry gets the
        saved progress, so no step runs twice. Return the final progress (``reference``)."""
        raise NotImplementedError

    def attach_transcript(self, case: CaseView, reference: str,
                          transcript: Transcript) -> SendResult:
        """Attach a closed conversation's transcript to the helpline case ``reference``
        (the id ``create_case`` returned). May run more than once (retries): make it an
        update that a repeat leaves as it was, or send ``transcript.id`` to deduplicate."""
        raise NotImplementedError

    def check(self) -> CheckResult:
        """``sites check``: reachable, and our credentials accepted? Never log secrets."""
        raise NotImplementedError

    def queue_position(self, conversation: ConversationView) -> int | None:
        """Where a waiting conversation stands in the helpline's queue (1: next to be
        taken), or None when the helpline does not say. Asked just before a
        ``still_waiting`` event, under a short deadline (a late answer is dropped): be
        quick, read only. Failures may be raised; the event goes with null either way."""
        raise NotImplementedError

    def refresh_credentials(self) -> None:
        """Forget cached credentials (a session token) after the helpline refused them."""
        raise NotImplementedError
