"""``helpline-adapter deliveries``: see what is pending or failed, and replay it."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from ..delivery.replay import REPLAYABLE, replayable, requeue
from ..extensions import db
from ..models import Delivery, DeliveryStatus

group = AppGroup("deliveries", help="Inspect and replay outbound deliveries (no message text).")


def _line(d: Delivery) -> str:
    return (f"{d.id}\t{d.status}\t{d.site}\t{d.target}/{d.action}\tattempts={d.attempts}"
            f"\tlast={d.last_status_code or '-'}\tconversation={d.conversation_id or '-'}")


@group.command("list")
@click.option("--failed", is_flag=True, help="Only failed (dead-letter) deliveries.")
@click.option("--pending", is_flag=True, help="Only unfinished deliveries (pending, in "
              "flight or held).")
@click.option("--held", is_flag=True, help="Only held deliveries: their site cannot be "
              "delivered to as configured (see 'sites check').")
@click.option("--site", help="Only this site.")
@click.option("--limit", type=int, default=100, show_default=True)
def list_deliveries(failed: bool, pending: bool, held: bool, site: str | None,
                    limit: int) -> None:
    """List deliveries, newest first."""
    query = db.select(Delivery).order_by(Delivery.id.desc()).limit(limit)
    if failed:
        query = query.where(Delivery.status == DeliveryStatus.FAILED)
    if pending:
        query = query.where(Delivery.status.in_(DeliveryStatus.ACTIVE))
    if held:
        query = query.where(Delivery.status == DeliveryStatus.HELD)
    if site:
        query = query.where(Delivery.site == site)
    rows = db.session.execute(query).scalars().all()
    if not rows:
        click.echo("no deliveries")
    for delivery in rows:
        click.echo(_line(delivery))


@group.command("show")
@click.argument("delivery_id", type=int)
def show(delivery_id: int) -> None:
    """Show one delivery: attempts, last status and error (never message text)."""
    d = db.session.get(Delivery, delivery_id)
    if d is None:
        raise click.ClickException(f"no delivery {delivery_id}")
    for label, value in (
        ("id", d.id), ("status", d.status), ("site", d.site), ("target", d.target),
        ("action", d.action), ("conversation", d.conversation_id), ("message", d.message_id),
        ("case", d.case_id), ("attempts", d.attempts), ("due_at", d.due_at),
        ("last_status_code", d.last_status_code), ("last_error", d.last_error),
        ("created_at", d.created_at), ("done_at", d.done_at),
    ):
        click.echo(f"{label}: {value if value is not None else '-'}")


@group.command("retry")
@click.argument("delivery_id", type=int, required=False)
@click.option("--all-failed", is_flag=True, help="Replay every failed delivery.")
@click.option("--all-held", is_flag=True, help="Try every held delivery again now.")
@click.option("--site", help="With --all-failed or --all-held: only this site.")
def retry(delivery_id: int | None, all_failed: bool, all_held: bool, site: str | None) -> None:
    """Replay a failed or held delivery (ID), or all of them (--all-failed, --all-held).

    A held delivery whose site is still incomplete is held again by the worker, with no
    attempt counted and no call made."""
    if [delivery_id is not None, all_failed, all_held].count(True) != 1:
        raise click.UsageError("give a delivery ID, --all-failed or --all-held")
    statuses = ((DeliveryStatus.FAILED,) if all_failed else (DeliveryStatus.HELD,)
                if all_held else REPLAYABLE)
    rows = replayable(delivery_id=delivery_id, site=site, statuses=statuses)
    if delivery_id is not None and not rows:
        raise click.ClickException(
            f"delivery {delivery_id} does not exist, or is neither failed nor held")
    requeue(current_app, rows)
    click.echo(f"requeued {len(rows)} deliveries")


def register(app: Flask) -> None:
    app.cli.add_command(group)
