"""Database models: the durable truth of every conversation, message and delivery."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .extensions import db

# SQLite only autoincrements an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT.
BigId = BigInteger().with_variant(Integer, "sqlite")


def utcnow() -> datetime:
    """Naive UTC: one convention for SQLite and PostgreSQL alike."""
    return datetime.now(UTC).replace(tzinfo=None)


def new_id() -> str:
    return str(uuid.uuid4())


class ConversationState:
    REQUESTED = "requested"  # accepted from the chatbot, not yet at the helpline
    WAITING = "waiting"  # at the helpline, hunting for a counsellor
    ACTIVE = "active"  # a counsellor took it
    CLOSED = "closed"

    OPEN = (REQUESTED, WAITING, ACTIVE)


class Direction:
    TO_HELPLINE = "to_helpline"  # client → counsellor
    TO_CLIENT = "to_client"  # counsellor → client


class MessageStatus:
    ACCEPTED = "accepted"
    SENT = "sent"  # the far side answered 2xx
    DELIVERED = "delivered"  # the far side acknowledged it
    READ = "read"
    FAILED = "failed"  # retries exhausted, or the far side said so

    ORDER = {ACCEPTED: 0, SENT: 1, DELIVERED: 2, READ: 3}
    #: The statuses each status may be written over: they only move forward
    #: (accepted → sent → delivered | read), and ``failed`` only before the far side
    #: acknowledged the message. Every change is an UPDATE guarded by this list
    #: (``protocol._advance_status``), never decided on a status read earlier.
    PREDECESSORS = {
        SENT: (ACCEPTED,),
        DELIVERED: (ACCEPTED, SENT),
        READ: (ACCEPTED, SENT, DELIVERED),
        FAILED: (ACCEPTED, SENT),
    }


#: The predicate of the held-conversations partial index (SQL text: the migration says
#: the same).
_HELD = text("held_since IS NOT NULL")


class Conversation(db.Model):
    __tablename__ = "conversations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    # The chatbot's id, unique only within the namespace of the client that opened it:
    # two chatbots may use the same id, and neither can name the other's conversation.
    namespace: Mapped[str] = mapped_column(String(120))
    external_id: Mapped[str] = mapped_column(String(200))
    site: Mapped[str] = mapped_column(String(64), index=True)
    dialect: Mapped[str] = mapped_column(String(32), default="rapidpro")
    state: Mapped[str] = mapped_column(String(16), default=ConversationState.REQUESTED)
    client_pseudonym: Mapped[str] = mapped_column(String(64))
    contact_uuid: Mapped[str | None] = mapped_column(String(64))
    contact_urn: Mapped[str | None] = mapped_column(String(255))  # purged with retention
    counsellor: Mapped[str | None] = mapped_column(String(120))
    risk: Mapped[str | None] = mapped_column(String(64))
    location: Mapped[str | None] = mapped_column(String(120))
    # The child's language (ISO 639-3, from the chatbot): which site texts they are sent.
    language: Mapped[str | None] = mapped_column(String(3))
    flow_uuid: Mapped[str | None] = mapped_column(String(64))
    run_uuid: Mapped[str | None] = mapped_column(String(64))
    # Where its chatbot is called back, when the chatbot gave it (a Weni ticketer's
    # ``metadata.webhook_base_url``); None: the site's own settings say.
    chatbot_callback_url: Mapped[str | None] = mapped_column(String(2048))
    opened_by: Mapped[str | None] = mapped_column(String(120))
    closed_by: Mapped[str | None] = mapped_column(String(16))
    close_reason: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    waiting_since: Mapped[datetime | None]
    assigned_at: Mapped[datetime | None]
    no_counsellor_at: Mapped[datetime | None]
    still_waiting_at: Mapped[datetime | None]  # the last `still_waiting` event
    # Started while its site was closed ([hours] outside = "hold"): kept from the helpline
    # until the site opens; None once it opened (or never held). Its wait counts from then.
    held_since: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    # A child who wrote again soon after a close (``[policies] reopen_within``): how many
    # times, and when last. A helpline that cannot reopen a session gets a new
    # conversation instead, linked to the one before it (``previous_id``).
    reopen_count: Mapped[int] = mapped_column(default=0, server_default="0")
    reopened_at: Mapped[datetime | None]
    previous_id: Mapped[str | None] = mapped_column(String(36), index=True)

    messages: Mapped[list[Message]] = relationship(
        back_populates="conversation", order_by="Message.seq", lazy="select"
    )

    __table_args__ = (
        UniqueConstraint("namespace", "external_id"),
        Index("ix_conversations_site_client", "site", "client_pseudonym"),
        Index("ix_conversations_state_waiting", "state", "waiting_since"),
        # The relay looks for held conversations on every sweep: only they are indexed.
        Index("ix_conversations_held", "site", postgresql_where=_HELD, sqlite_where=_HELD),
    )

    @property
    def is_open(self) -> bool:
        return self.state in ConversationState.OPEN


class Message(db.Model):
    __tablename__ = "messages"

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(36), unique=True, default=new_id)
    conversation_id: Mapped[str] = mapped_column(db.ForeignKey("conversations.id"), index=True)
    direction: Mapped[str] = mapped_column(String(16))
    sender_message_id: Mapped[str] = mapped_column(String(200))
    sender: Mapped[str | None] = mapped_column(String(120))  # a pseudonym, never a name
    text: Mapped[str | None] = mapped_column(Text)  # None once purged
    attachments: Mapped[list | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default=MessageStatus.ACCEPTED)
    failure_reason: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    purged_at: Mapped[datetime | None]

    conversation: Mapped[Conversation] = relationship(back_populates="messages")

    __table_args__ = (
        UniqueConstraint("conversation_id", "direction", "sender_message_id"),
        # /metrics: counts and latency by site and direction, read from the index alone
        Index("ix_messages_conversation_metrics", "conversation_id", "direction", "status",
              "created_at", "sent_at"),
    )


class DeliveryStatus:
    PENDING = "pending"  # due at ``due_at``
    SENDING = "sending"  # claimed by a worker until ``lease_until``
    DONE = "done"
    FAILED = "failed"  # retries exhausted or a permanent refusal; replayable
    #: Its site cannot be delivered to as configured (a secret of the target's table is
    #: unset): no call is made and no attempt counted. The relay makes it pending again
    #: once a worker has the site complete; an operator may retry it. It holds its lane.
    HELD = "held"

    ACTIVE = (PENDING, SENDING, HELD)


#: The predicates of the claim's partial indexes (SQL text, so the migration says the
#: same and PostgreSQL can match them to the claim's own literal conditions).
_PENDING = text("status = 'pending'")
_ACTIVE = text("status IN ('pending', 'sending', 'held')")


class Delivery(db.Model):
    """One outbound call, committed with what caused it (the transactional outbox).

    ``lane`` orders deliveries: within a lane only the oldest unfinished one may be
    sent, so a conversation's messages reach the far side in the order accepted.
    """

    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    lane: Mapped[str] = mapped_column(String(120))
    site: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str] = mapped_column(String(16))  # "helpline" | "chatbot"
    action: Mapped[str] = mapped_column(String(24))
    conversation_id: Mapped[str | None] = mapped_column(
        db.ForeignKey("conversations.id"), index=True
    )
    message_id: Mapped[str | None] = mapped_column(String(36))
    case_id: Mapped[str | None] = mapped_column(String(36))
    params: Mapped[dict | None] = mapped_column(JSON)  # ids and flags only, never text
    progress: Mapped[dict | None] = mapped_column(JSON)  # multi-step state (case creation)
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    due_at: Mapped[datetime] = mapped_column(default=utcnow)
    lease_until: Mapped[datetime | None]
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    done_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_deliveries_lane_id", "lane", "id"),
        Index("ix_deliveries_status_due", "status", "due_at"),
        # The claim reads only unfinished rows, whatever the history: done rows (nearly
        # all of them, in a deployment's life) are in neither of these partial indexes.
        Index("ix_deliveries_pending_id", "id", postgresql_where=_PENDING,
              sqlite_where=_PENDING),
        Index("ix_deliveries_active_lane_id", "lane", "id", postgresql_where=_ACTIVE,
              sqlite_where=_ACTIVE),
        # /metrics: counts by status, site and target, retries, oldest due, from the index
        Index("ix_deliveries_status_site_metrics", "status", "site", "target", "attempts",
              "due_at", "created_at"),
    )


ROLES = ("chatbot", "helpline", "monitor")  # monitor: reads /metrics, nothing else


class ApiClient(db.Model):
    """Who may call us: a chatbot (RapidPro org), a helpline account, or a monitor."""

    __tablename__ = "api_clients"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    role: Mapped[str] = mapped_column(String(16), default="chatbot")  # see ROLES
    sites: Mapped[list | None] = mapped_column(JSON)  # None: every site
    # Whose conversations it opens and names: by default its own name. Clients sharing
    # a namespace (a rotated key, several keys of one Weni workspace) share them.
    namespace: Mapped[str | None] = mapped_column(String(120))
    # May read (never change) conversations of other namespaces on its sites.
    reads_all: Mapped[bool] = mapped_column(default=False, server_default=false())
    key_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(200))
    can_read_text: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]

    @property
    def effective_namespace(self) -> str:
        return self.namespace or self.name


class ApiToken(db.Model):
    """A time-bound token: OpenCHS-style ``/api/token/`` logins and site callback logins."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    client_id: Mapped[int | None] = mapped_column(db.ForeignKey("api_clients.id"), index=True)
    site: Mapped[str | None] = mapped_column(String(64))  # a helpline site's callback token
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]

    client: Mapped[ApiClient | None] = relationship()


class IdempotencyRecord(db.Model):
    """The first answer to a request carrying an ``Idempotency-Key``, replayed on repeats."""

    __tablename__ = "idempotency_records"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(160))  # who asked
    key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))  # method, path and body hash
    site: Mapped[str | None] = mapped_column(String(64))  # checked again before a replay
    status_code: Mapped[int] = mapped_column(Integer)
    body: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    __table_args__ = (UniqueConstraint("scope", "key"),)


class Case(db.Model):
    """What the child shared, on its way to becoming a helpline case."""

    __tablename__ = "cases"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    namespace: Mapped[str] = mapped_column(String(120))  # as a conversation's
    external_id: Mapped[str | None] = mapped_column(String(200))
    site: Mapped[str] = mapped_column(String(64), index=True)
    conversation_id: Mapped[str | None] = mapped_column(
        db.ForeignKey("conversations.id"), index=True
    )
    status: Mapped[str] = mapped_column(String(16), default="pending")  # created | failed
    helpline_reference: Mapped[str | None] = mapped_column(String(120))
    failure_reason: Mapped[str | None] = mapped_column(String(200))
    intake: Mapped[dict | None] = mapped_column(JSON)  # None once purged
    contact_uuid: Mapped[str | None] = mapped_column(String(64))
    contact_urn: Mapped[str | None] = mapped_column(String(255))
    client_pseudonym: Mapped[str | None] = mapped_column(String(64))
    opened_by: Mapped[str | None] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    purged_at: Mapped[datetime | None]

    __table_args__ = (UniqueConstraint("namespace", "external_id"),)


class AuditEvent(db.Model):
    """Who did what to a conversation or case: ids and states, never content."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str | None] = mapped_column(String(36), index=True)
    case_id: Mapped[str | None] = mapped_column(String(36), index=True)
    actor: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(48))
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str | None] = mapped_column(String(16))
    detail: Mapped[dict | None] = mapped_column(JSON)
    at: Mapped[datetime] = mapped_column(default=utcnow)


#: Console roles, each with what the one before it may do: ``viewer`` sees, ``operator``
#: also retries deliveries, ``supervisor`` may also read message text.
OPERATOR_ROLES = ("viewer", "operator", "supervisor")


class Operator(db.Model):
    """A person using the operations console (``/console``), created from the CLI."""

    __tablename__ = "operators"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # see OPERATOR_ROLES
    sites: Mapped[list | None] = mapped_column(JSON)  # None: every site
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    disabled_at: Mapped[datetime | None]
    # A session that logged in before this is over (a logout ends every session of its
    # operator: a copied cookie is no use afterwards).
    sessions_valid_after: Mapped[datetime | None]

    def may_use_site(self, site: str) -> bool:
        return self.sites is None or site in self.sites

    @property
    def may_retry(self) -> bool:
        return self.role in ("operator", "supervisor")

    @property
    def may_read_text(self) -> bool:
        return self.role == "supervisor"
