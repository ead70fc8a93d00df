"""Claim due deliveries, perform them, record what happened.

Only the oldest unfinished delivery of a lane may be claimed, so a conversation's
messages reach the far side in the order they were accepted, across retries too.
A claim is a lease: a worker that dies mid-delivery leaves a row that the relay
returns to ``pending`` when the lease runs out.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import timedelta

from flask import Flask
from sqlalchemy import and_, bindparam, exists, literal, select, text, update
from sqlalchemy.orm import aliased
from sqlalchemy.orm.attributes import set_committed_value

from plugins.types import DeliveryFailure

from ..extensions import db
from ..models import Delivery, DeliveryStatus, utcnow
from ..outbox import HELPLINE, MEDIA
from ..state import state_of
from .backoff import next_delay
from .held import SiteHeld, hold
from .pacing import NotYet
from .performers import (
    forget_preloaded,
    preload,
    prepare,
    record_failure,
    record_success,
    runs_alone,
)
from .recovery import release_site

log = logging.getLogger(__name__)

_head = aliased(Delivery, name="head")
_older = aliased(Delivery, name="older")


def _lane_heads(now, skip_sites: frozenset[str] = frozenset()):
    """Pending, due rows with nothing older still unfinished in their lane."""
    # The statuses are written into the SQL, not bound: PostgreSQL uses a partial index
    # (models: ix_deliveries_pending_id, ix_deliveries_active_lane_id) only when it can
    # see that the query's condition is the index's, which a parameter hides.
    blocked = exists().where(
        and_(
            _older.lane == _head.lane,
            _older.id < _head.id,
            _older.status.in_([literal(s, literal_execute=True)
                               for s in DeliveryStatus.ACTIVE]),
        )
    )
    query = (
        select(_head.id)
        .where(_head.status == literal(DeliveryStatus.PENDING, literal_execute=True),
               _head.due_at <= now, ~blocked)
        .order_by(_head.id)
    )
    if skip_sites:
        query = query.where(_head.site.not_in(skip_sites))
    return query


def claim(app: Flask, limit: int, skip_sites: frozenset[str] = frozenset()) -> list[int]:
    """Lease up to ``limit`` lane heads to this worker, atomically; returns their ids."""
    now = utcnow()
    # Materialised: an ``IN (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED)`` may be run
    # again by PostgreSQL for each row it joins, and then leases more than ``n`` rows
    # (measured: 200 for a limit of 50, on a table its planner had no statistics for).
    heads = (_lane_heads(now, skip_sites).limit(limit).with_for_update(skip_locked=True)
             .cte("heads").prefix_with("MATERIALIZED", dialect="postgresql"))
    lease = timedelta(seconds=app.config["DELIVERY_LEASE_SECONDS"])
    stmt = (
        update(Delivery)
        .where(Delivery.id.in_(select(heads.c.id)), Delivery.status == DeliveryStatus.PENDING)
        .values(status=DeliveryStatus.SENDING, lease_until=now + lease,
                attempts=Delivery.attempts + 1)
        .returning(Delivery.id)
        .execution_options(synchronize_session=False)
    )
    ids = sorted(db.session.execute(stmt).scalars())
    db.session.commit()
    return ids


def due_exists() -> bool:
    return db.session.execute(select(_lane_heads(utcnow()).limit(1).exists())).scalar()


def release_stuck() -> int:
    """Leases that ran out belong to dead workers: make those rows pending again."""
    result = db.session.execute(
        update(Delivery)
        .where(Delivery.status == DeliveryStatus.SENDING, Delivery.lease_until < utcnow())
        .values(status=DeliveryStatus.PENDING, lease_until=None)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    if result.rowcount:
        log.warning("delivery.lease_expired", extra={"count": result.rowcount})
    return result.rowcount


@dataclass
class BatchResult:
    done: int = 0
    retried: int = 0
    failed: int = 0
    released: int = 0
    earliest_retry: float | None = None
    unexpected: Exception | None = None


def _lease_deadline(app: Flask, claimed_at: float) -> float:
    """When a batch must stop sending: early enough that the slowest possible call
    still ends, and the batch commits, before the lease runs out and the relay hands
    the rows to another worker (which would break lane order)."""
    slowest_call = app.config["HTTP_CONNECT_TIMEOUT"] + app.config["HTTP_READ_TIMEOUT"]
    return claimed_at + app.config["DELIVERY_LEASE_SECONDS"] - slowest_call - 2.0


def run_batch(app: Flask, ids: list[int], claimed_at: float | None = None) -> BatchResult:
    """Perform claimed deliveries, several at once. A site that fails transiently is
    skipped for the rest of the batch, so one dead helpline does not hold up the others.

    A batch holds at most one delivery per lane (only lane heads are claimed), so
    sending its rows side by side keeps every conversation's order. Database work
    (loading, recording outcomes) stays in this thread; only the calls to the far side
    run in the pool, up to ``DELIVERY_CONCURRENCY`` at once, continuously (``_pipeline``).

    The rows, their conversations and messages are loaded in three queries. Each call's
    outcome is committed as soon as its answer arrives (in the order answers arrive, not
    the order calls were made; answers that arrived together share a commit): a helpline
    that cannot deduplicate (OpenCHS's ``msg/`` stores every POST) must never see a
    completed call again because the worker died later in the batch. A worker that dies
    mid-batch leaves only the calls that were in flight unrecorded (at most
    ``DELIVERY_CONCURRENCY``); their leases run out and they go again, still in lane
    order. Rows the batch had not started yet go once.
    The session keeps its objects across these commits (``expire_on_commit`` off for the
    batch): they are this worker's leased rows, and message statuses are written by
    guarded UPDATEs that never trust the in-memory status (``protocol._advance_status``).
    """
    result = BatchResult()
    failing_sites: set[str] = set()
    rows = db.session.execute(
        select(Delivery).where(Delivery.id.in_(ids)).order_by(Delivery.id)
    ).scalars().all()
    preload(rows)
    deadline = _lease_deadline(app, time.monotonic() if claimed_at is None else claimed_at)
    session = db.session()
    expire_on_commit, session.expire_on_commit = session.expire_on_commit, False
    try:
        _pipeline(app, rows, deadline, failing_sites, result)
        db.session.commit()  # the releases; every outcome is committed already
    finally:
        session.expire_on_commit = expire_on_commit
        forget_preloaded()
    return result


_pools: dict[int, ThreadPoolExecutor] = {}


def _executor(size: int) -> ThreadPoolExecutor:
    """One pool per configured size for the life of the worker."""
    if size not in _pools:
        _pools[size] = ThreadPoolExecutor(max_workers=size, thread_name_prefix="deliver")
    return _pools[size]


def _site_cap(app: Flask, delivery: Delivery, size: int) -> int:
    """How many calls may be in flight at once to this delivery's side of its site: the
    site's ``[policies] max_in_flight`` for its helpline (a small helpline must not be
    flooded), else the worker's ``DELIVERY_CONCURRENCY``."""
    if delivery.target != HELPLINE:
        return size
    site = state_of(app).sites.get(delivery.site)
    cap = site.policies.max_in_flight if site is not None else None
    return max(1, min(size, cap)) if cap else size


def _pipeline(app: Flask, rows: list[Delivery], deadline: float, failing_sites: set[str],
              result: BatchResult) -> None:
    """Keep up to ``DELIVERY_CONCURRENCY`` calls in flight: a slot that frees takes the
    next row at once (no wave waits for its slowest call), within each site's cap.

    Rows not started by the lease deadline go back, untried, for a later batch (one call
    always starts). Each answer's outcome is committed as it arrives (answers that
    arrived together share one commit)."""
    size = max(1, int(app.config["DELIVERY_CONCURRENCY"]))
    pool = _executor(size)
    queue = deque(rows)
    in_flight: dict[Future, tuple[Delivery, float, tuple[str, str]]] = {}
    per_site: Counter[tuple[str, str]] = Counter()
    started_any = False
    while queue or in_flight:
        deferred: list[Delivery] = []
        while queue and len(in_flight) < size:
            delivery = queue.popleft()
            if delivery.status != DeliveryStatus.SENDING:
                continue
            if started_any and time.monotonic() >= deadline:
                _release(delivery, delay=0)  # untried: a later batch, in order
                result.released += 1
                continue
            if delivery.site in failing_sites:
                _release(delivery, delay=1.0)
                result.released += 1
                continue
            side = (delivery.site, delivery.target)
            if per_site[side] >= _site_cap(app, delivery, size):
                deferred.append(delivery)  # its site is at its cap: after a slot frees
                continue
            started_any = True
            started = time.monotonic()
            try:
                call = prepare(app, delivery)
            except Exception as exc:  # noqa: BLE001 - recorded like a failed call
                _settle(app, delivery, None, exc, started, failing_sites, result)
                continue
            if runs_alone(delivery, call) or (not queue and not in_flight):
                _settle(app, delivery, *_call(call), started, failing_sites, result)
                continue
            in_flight[pool.submit(_call, call)] = (delivery, started, side)
            per_site[side] += 1
        queue.extendleft(reversed(deferred))
        if not in_flight:
            continue  # whatever is left can start now (a cap is never below 1)
        done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
        finished = []
        for future in done:
            delivery, started, side = in_flight.pop(future)
            per_site[side] -= 1
            finished.append(_record(app, delivery, *future.result(), started, failing_sites,
                                    result))
        _commit_outcomes()
        _log_done(finished)


def _call(call: Callable) -> tuple[object, Exception | None]:
    try:
        return call(), None
    except Exception as exc:  # noqa: BLE001 - handed to the main thread to record
        return None, exc


def _settle(app: Flask, delivery: Delivery, outcome, error: Exception | None, started: float,
            failing_sites: set[str], result: BatchResult) -> None:
    """Record one delivery's outcome and commit it at once (in the main thread, the only
    one with a session): from here on a crash of this worker cannot send it again."""
    finished = _record(app, delivery, outcome, error, started, failing_sites, result)
    _commit_outcomes()
    _log_done([finished])


def _commit_outcomes() -> None:
    """Commit recorded outcomes without waiting for the WAL flush (PostgreSQL's
    ``synchronous_commit = off``, for this transaction only).

    Once per answer, the flush wait would cost more than the call itself (measured: a
    third of a worker's throughput). It guards nothing here: a worker killed after the
    COMMIT has its outcome (the server has it); only a crash of the database server
    itself within ~0.6 s (3 × ``wal_writer_delay``) may lose outcomes, and those calls go
    again, as every call in flight does. What must be durable before we answer 2xx (an
    accepted request) is committed elsewhere, synchronously.
    """
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("SET LOCAL synchronous_commit TO OFF"))
    db.session.commit()


def _record(app: Flask, delivery: Delivery, outcome, error: Exception | None, started: float,
            failing_sites: set[str], result: BatchResult) -> dict | None:
    """Apply one delivery's outcome to the session (the caller commits); for a success,
    what ``delivery.done`` logs once it is committed."""
    if error is None:
        _succeed(delivery, outcome)
        result.done += 1
        return {"delivery_id": delivery.id, "site": delivery.site, "target": delivery.target,
                "action": delivery.action, "attempt": delivery.attempts,
                "conversation_id": delivery.conversation_id,
                "duration_ms": round((time.monotonic() - started) * 1000, 1)}
    if isinstance(error, NotYet):
        _release(delivery, delay=error.seconds)
        result.released += 1
    elif isinstance(error, DeliveryFailure):
        if error.retryable and delivery.target != MEDIA:  # a media host is not the site's
            failing_sites.add(delivery.site)
        _fail(app, delivery, error, result)
    else:  # a bug or an unexpected answer: retry, and surface it
        log.error("delivery.error", exc_info=(type(error), error, error.__traceback__),
                  extra={"delivery_id": delivery.id, "site": delivery.site})
        _fail(app, delivery, DeliveryFailure(f"error: {type(error).__name__}",
                                             retryable=True), result)
        result.unexpected = error
    return None


def _log_done(finished: list[dict | None]) -> None:
    for extra in finished:
        if extra is not None:
            log.info("delivery.done", extra=extra)


def _release(delivery: Delivery, delay: float) -> None:
    """Give a claimed row back without counting an attempt (paced, or its site is failing)."""
    delivery.status = DeliveryStatus.PENDING
    delivery.attempts -= 1
    delivery.lease_until = None
    delivery.due_at = utcnow() + timedelta(seconds=delay)


def _succeed(delivery: Delivery, outcome) -> None:
    if delivery.attempts > 1:  # it had failed before: its peer is back, so is the backlog
        release_site(delivery.site, delivery.target)
    values = {"status": DeliveryStatus.DONE, "done_at": utcnow(), "lease_until": None,
              "last_status_code": getattr(outcome, "status_code", None), "last_error": None}
    # One prebuilt UPDATE, the object then told it is what the row holds: through the
    # unit of work, this one row's flush cost the worker more CPU than its HTTP call.
    db.session.connection().execute(_DONE, {"delivery_id": delivery.id, **values})
    for column, value in values.items():
        set_committed_value(delivery, column, value)
    record_success(delivery, outcome)


_DONE = (update(Delivery.__table__)
         .where(Delivery.__table__.c.id == bindparam("delivery_id"))
         .values({column: bindparam(column) for column in (
             "status", "done_at", "lease_until", "last_status_code", "last_error")}))


def _fail(app: Flask, delivery: Delivery, failure: DeliveryFailure, result: BatchResult) -> None:
    if isinstance(failure, SiteHeld):
        hold(delivery, failure.reason)
        result.released += 1
        return
    delivery.lease_until = None
    delivery.last_status_code = failure.status_code
    delivery.last_error = failure.reason[:500]
    delay = None
    if failure.retryable:
        delay = next_delay(delivery.attempts, app.config["RETRY_SCHEDULE"],
                           app.config["RETRY_JITTER"], failure.retry_after)
    extra = {"delivery_id": delivery.id, "site": delivery.site, "target": delivery.target,
             "action": delivery.action, "attempt": delivery.attempts,
             "status_code": failure.status_code, "conversation_id": delivery.conversation_id}
    if delay is None:
        delivery.status = DeliveryStatus.FAILED
        record_failure(delivery, failure.reason)
        result.failed += 1
        log.error("delivery.failed", extra=extra)
        return
    delivery.status = DeliveryStatus.PENDING
    delivery.due_at = utcnow() + timedelta(seconds=delay)
    result.retried += 1
    if result.earliest_retry is None or delay < result.earliest_retry:
        result.earliest_retry = delay
    log.warning("delivery.retry", extra={**extra, "retry_in": round(delay, 2)})


def drain(app: Flask) -> BatchResult:
    """Deliver until nothing is due or the time budget is spent; totals for the run."""
    budget = app.config["DRAIN_BUDGET_SECONDS"]
    limit = app.config["DELIVERY_BATCH"]
    deadline = time.monotonic() + budget
    total = BatchResult()
    while time.monotonic() < deadline:
        claimed_at = time.monotonic()
        ids = claim(app, limit)
        if not ids:
            break
        batch = run_batch(app, ids, claimed_at)
        total.done += batch.done
        total.retried += batch.retried
        total.failed += batch.failed
        total.released += batch.released
        total.unexpected = total.unexpected or batch.unexpected
        if batch.earliest_retry is not None:
            total.earliest_retry = batch.earliest_retry if total.earliest_retry is None \
                else min(total.earliest_retry, batch.earliest_retry)
        if batch.done == 0 and batch.released == len(ids):
            break  # everything claimed was paced or skipped: let time pass
    return total
