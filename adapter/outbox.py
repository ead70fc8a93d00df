"""Adding deliveries to the outbox, in the caller's transaction."""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import Table, bindparam, insert

from .extensions import db
from .models import Conversation, Delivery, DeliveryStatus, utcnow
from .sites import Site
from .state import state_of

HELPLINE = "helpline"
CHATBOT = "chatbot"
#: Fetching a chatbot's attachments to re-host them (opt-in per site): a lane of its own.
MEDIA = "media"


def lane_for(target: str, conversation_id: str | None = None, case_id: str | None = None) -> str:
    """Deliveries in one lane go out one at a time, oldest first."""
    return f"{conversation_id or 'case:' + str(case_id)}:{target}"


def add_delivery(**fields: Any) -> Delivery:
    """A delivery (the fields of :func:`new_delivery`) added to the caller's transaction."""
    delivery = new_delivery(**fields)
    db.session.add(delivery)
    # Noted for commit(), which wakes the workers once the row is durable.
    db.session.info["deliveries_added"] = True
    return delivery


def insert_with_delivery(row: db.Model, delivery: Delivery) -> None:
    """Insert ``row`` (a new message, say) and the delivery that carries it in one round
    trip to PostgreSQL, in the caller's transaction; both objects stay transient.

    The hot path of every accepted client message: the ORM's flush would send two
    INSERTs, each waiting for its answer. Elsewhere (SQLite, in-process) two statements.
    """
    db.session.flush()  # what the session holds goes first: the conversation, an earlier
    # delivery of the same lane (which must keep the lower id)
    values, carried = _column_values(row), _column_values(delivery)
    first, second = _inserts(type(row).__table__, tuple(values), tuple(carried))
    params = {**_prefixed("row_", values), **_prefixed("delivery_", carried)}
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(_carried_by(first, second), params)
    else:
        db.session.execute(first, params)
        db.session.execute(second, params)
    db.session.info["deliveries_added"] = True


def _prefixed(prefix: str, values: dict) -> dict:
    return {prefix + key: value for key, value in values.items()}


@cache
def _inserts(table: Table, row_keys: tuple[str, ...], delivery_keys: tuple[str, ...]):
    """The two INSERTs with bound parameters, built once per set of columns: a statement
    built per request costs more CPU than the database spends running it."""

    def insert_of(target: Table, keys: tuple[str, ...], prefix: str):
        return insert(target).values({
            key: bindparam(prefix + key, type_=target.c[key].type) for key in keys})

    return (insert_of(table, row_keys, "row_"),
            insert_of(Delivery.__table__, delivery_keys, "delivery_"))


@cache
def _carried_by(first, second):
    """One statement: ``second`` with ``first`` as a data-modifying CTE (PostgreSQL)."""
    return second.add_cte(first.cte("carried"))


def _column_values(row: db.Model) -> dict:
    """The values set on a new object, with its columns' Python defaults (``default=``)
    where it has none: stated here, as the ORM's flush would, not left to the CTE."""
    values = {}
    for column in row.__table__.columns:
        value, default = getattr(row, column.key, None), column.default
        if value is None and default is not None:
            value = default.arg({}) if default.is_callable else default.arg
        if value is not None:
            values[column.key] = value
    return values


def new_delivery(
    *,
    site: str,
    target: str,
    action: str,
    conversation: Conversation | None = None,
    message_id: str | None = None,
    case_id: str | None = None,
    params: dict | None = None,
) -> Delivery:
    """A delivery object, not yet in the session: ``held`` when its site cannot be
    delivered to as this process has it configured (kept, never attempted, until then)."""
    conversation_id = conversation.id if conversation is not None else None
    known = state_of().sites.get(site)
    problem = known.problem_for(target) if known is not None else None
    return Delivery(
        status=DeliveryStatus.HELD if problem else DeliveryStatus.PENDING,
        last_error=problem,
        lane=lane_for(target, conversation_id, case_id),
        site=site,
        target=target,
        action=action,
        conversation_id=conversation_id,
        message_id=message_id,
        case_id=case_id,
        params=params,
        due_at=utcnow(),
    )


def add_chatbot_event(
    site: Site, conversation: Conversation | None, event: str, params: dict | None = None,
    case_id: str | None = None,
) -> Delivery | None:
    """Queue an event to the chatbot, if the site sends that event anywhere. The
    conversation's dialect may say otherwise (``AdapterState.chatbot_events``): which
    events its chatbot hears, and as what."""
    planned = None
    hook = state_of().chatbot_events
    if hook is not None and conversation is not None:
        planned = hook(site, conversation, event, params or {})
    if planned is not None:
        first = None
        for name, values in planned:
            delivery = add_delivery(
                site=site.code, target=CHATBOT,
                action="message" if name == "message" else "event",
                conversation=conversation,
                message_id=values.get("message_id") if name == "message" else None,
                case_id=case_id, params={"event": name, **values})
            first = first or delivery
        return first
    rapidpro = site.rapidpro
    if rapidpro is None or (event != "message" and event not in rapidpro.flows):
        return None
    needs_flow = event == "message" and rapidpro.message_mode == "flow_starts"
    if needs_flow and "message" not in rapidpro.flows:
        return None
    return add_delivery(
        site=site.code,
        target=CHATBOT,
        action="message" if event == "message" else "event",
        conversation=conversation,
        message_id=(params or {}).get("message_id") if event == "message" else None,
        case_id=case_id,
        params={"event": event, **(params or {})},
    )
