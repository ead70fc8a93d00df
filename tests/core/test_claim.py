"""The claim leases lane heads, at most as many as asked, reading unfinished rows only."""

from __future__ import annotations

from sqlalchemy import text

from adapter.delivery.engine import claim
from adapter.extensions import db
from adapter.models import Delivery, DeliveryStatus


def _rows(app, lanes: int, history: int) -> None:
    with app.app_context():
        db.session.execute(text("DELETE FROM deliveries"))
        rows = [{"lane": f"lane-{n % lanes}", "site": "lb", "target": "helpline",
                 "action": "message", "status": DeliveryStatus.DONE, "attempts": 1}
                for n in range(history)]
        rows += [{"lane": f"lane-{n}", "site": "lb", "target": "helpline", "action": "message",
                  "status": DeliveryStatus.PENDING, "attempts": 0} for n in range(lanes)]
        db.session.execute(Delivery.__table__.insert(), rows)
        db.session.commit()


def test_a_claim_never_leases_more_than_its_limit(app):
    """PostgreSQL may run an ``IN (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED)`` once per
    row it joins: a table it has no statistics for leased 200 rows for a limit of 50."""
    _rows(app, lanes=200, history=1000)
    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            db.session.execute(text("SELECT pg_stat_reset()"))  # as freshly grown
        first = claim(app, 50)
        second = claim(app, 50)
        assert len(first) == 50 and len(second) == 50
        assert not set(first) & set(second)
        leased = db.session.execute(text(
            "SELECT count(*) FROM deliveries WHERE status = 'sending'")).scalar()
        assert leased == 100


def test_the_claim_reads_through_the_partial_indexes(app):
    """The lane-head query can use the indexes of unfinished rows (on PostgreSQL its
    literal statuses match the partial indexes' predicates; a bound parameter would not),
    so its cost can follow the backlog, not the deployment's history."""
    _rows(app, lanes=50, history=5000)
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            names = {row[1] for row in db.session.execute(text("PRAGMA index_list(deliveries)"))}
            assert {"ix_deliveries_pending_id", "ix_deliveries_active_lane_id"} <= names
            return
        from adapter.delivery.engine import _lane_heads
        from adapter.models import utcnow

        db.session.execute(text("ANALYZE deliveries"))
        sql = str(_lane_heads(utcnow()).limit(50).compile(
            db.engine, compile_kwargs={"literal_binds": True}))
        db.session.execute(text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(db.session.execute(text("EXPLAIN " + sql)).scalars())
        db.session.rollback()
        assert "ix_deliveries_active_lane_id" in plan, plan
