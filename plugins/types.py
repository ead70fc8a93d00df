"""Small typed values that cross the boundary between the core and the plugins."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from marshmallow import Schema


@dataclass(frozen=True)
class HelplineKind:
    """A kind of helpline a plugin speaks to, and the schema of a site's ``[helpline]`` table."""

    name: str
    config_schema: type[Schema]
    description: str = ""
    supports_acks: bool = False  # the helpline wants to hear when the client got a message


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


@dataclass(frozen=True)
class CaseProgress:
    """Where a multi-step case creation stands; saved after every step so a retry resumes."""

    steps: Mapping[str, str] = field(default_factory=dict)  # step name → helpline id
    reference: str | None = None  # the helpline's case id once created


# ---- Events parsed from a helpline's callbacks -------------------------------------


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

