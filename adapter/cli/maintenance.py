"""``helpline-adapter purge``: message text kept only as long as each site's policy says."""

from __future__ import annotations

from datetime import UTC, timedelta

import click
from flask import Flask

from .. import media_store
from ..extensions import db
from ..models import Case, Conversation, IdempotencyRecord, Message, utcnow
from ..state import state_of


@click.command("purge")
@click.option("--dry-run", is_flag=True, help="Count what would be purged; change nothing.")
def purge(dry_run: bool) -> None:
    """Erase message text, intake and URNs older than each site's retention_days (and
    re-hosted attachments then, or once their links expire)."""
    now = utcnow()
    total_messages = total_cases = media_files = 0
    for site in state_of().sites:
        cutoff = now - timedelta(days=site.policies.retention_days)
        rehost = site.attachments.rehost
        if rehost.enabled and rehost.directory and not dry_run:
            # Re-hosted attachments: expired links, and everything past retention.
            media_files += media_store.purge(rehost.directory,
                                             everything_before=cutoff.replace(tzinfo=UTC))
        conversations = db.select(Conversation.id).where(Conversation.site == site.code)
        messages = db.select(Message).where(
            Message.conversation_id.in_(conversations), Message.created_at < cutoff,
            Message.purged_at.is_(None))
        cases = db.select(Case).where(Case.site == site.code, Case.created_at < cutoff,
                                      Case.purged_at.is_(None))
        found_messages = db.session.execute(messages).scalars().all()
        found_cases = db.session.execute(cases).scalars().all()
        total_messages += len(found_messages)
        total_cases += len(found_cases)
        if dry_run:
            continue
        for message in found_messages:
            message.text = None
            message.attachments = None
            message.purged_at = now
        for case in found_cases:
            case.intake = None
            case.contact_urn = None
            case.purged_at = now
        db.session.execute(
            db.update(Conversation).where(
                Conversation.site == site.code, Conversation.closed_at < cutoff)
            .values(contact_urn=None))
    # Stored answers of idempotent requests carry no text, but need not live for ever.
    if not dry_run:
        db.session.execute(db.delete(IdempotencyRecord).where(
            IdempotencyRecord.created_at < now - timedelta(days=7)))
        db.session.commit()
    verb = "would purge" if dry_run else "purged"
    click.echo(f"{verb} {total_messages} messages and {total_cases} cases")
    if media_files:
        click.echo(f"purged {media_files} re-hosted attachments")


def register(app: Flask) -> None:
    app.cli.add_command(purge)
