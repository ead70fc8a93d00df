"""``helpline-adapter clients``: API keys and accounts for callers."""

from __future__ import annotations

import os

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from ..auth import hash_password, hash_secret, new_key
from ..callers import forget_all
from ..extensions import db
from ..models import ROLES, ApiClient, ApiToken, utcnow

group = AppGroup("clients", help="Create, list and revoke API clients (keys stored hashed).")


@group.command("create")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), default="chatbot", show_default=True,
              help="chatbot: Weni/RapidPro; helpline: a helpline account; monitor: reads "
                   "/metrics only (for Prometheus).")
@click.option("--site", "sites", multiple=True,
              help="Limit the client to this site (repeatable); default every site.")
@click.option("--password", "with_password", is_flag=True,
              help="Also set a password for the OpenCHS-style /api/token/ login "
                   "(prompted, or from HELPLINE_ADAPTER_CLIENT_PASSWORD).")
@click.option("--read-text", is_flag=True, help="May read message text through the API.")
@click.option("--namespace", default=None, metavar="NAME",
              help="Share the conversations of this namespace (another client's name, to "
                   "rotate a key or give one chatbot several keys); default: its own name.")
@click.option("--read-all", is_flag=True,
              help="May read (never change) conversations opened by other clients on its "
                   "sites (a chatbot client for a deployment-wide dashboard).")
def create(name: str, role: str, sites: tuple[str, ...], with_password: bool,
           read_text: bool, namespace: str | None, read_all: bool) -> None:
    """Create client NAME; its new key is printed alone on the last line."""
    if db.session.execute(db.select(ApiClient).where(ApiClient.name == name)).scalar():
        raise click.ClickException(f"a client named {name!r} already exists")
    if (namespace or read_all) and role != "chatbot":
        raise click.ClickException("--namespace and --read-all are for chatbot clients")
    password = None
    if with_password:
        password = os.environ.get("HELPLINE_ADAPTER_CLIENT_PASSWORD") or click.prompt(
            "Password", hide_input=True, confirmation_prompt=True)
    key = new_key()
    client = ApiClient(name=name, role=role, sites=list(sites) or None,
                       key_hash=hash_secret(key), can_read_text=read_text,
                       namespace=namespace if namespace and namespace != name else None,
                       reads_all=read_all,
                       password_hash=hash_password(password) if password else None)
    db.session.add(client)
    db.session.commit()
    click.echo(f"created {role} client {name!r}"
               + (f" for sites {', '.join(sites)}" if sites else " for every site")
               + (f", namespace {namespace!r}" if namespace and namespace != name else ""))
    click.echo(key)


@group.command("list")
def list_clients() -> None:
    """List clients (names, roles, sites; never keys)."""
    rows = db.session.execute(db.select(ApiClient).order_by(ApiClient.name)).scalars().all()
    if not rows:
        click.echo("no clients")
    for client in rows:
        state = "revoked" if client.revoked_at else "active"
        sites = ",".join(client.sites) if client.sites else "*"
        click.echo(f"{client.name}\t{client.role}\t{sites}\t{state}\t"
                   f"namespace={client.effective_namespace}"
                   + ("\treads-all" if client.reads_all else ""))


@group.command("revoke")
@click.argument("name")
def revoke(name: str) -> None:
    """Revoke client NAME: its key and tokens stop working at once."""
    client = db.session.execute(db.select(ApiClient).where(ApiClient.name == name)).scalar()
    if client is None:
        raise click.ClickException(f"no client named {name!r}")
    now = utcnow()
    client.revoked_at = client.revoked_at or now
    db.session.execute(
        db.update(ApiToken).where(ApiToken.client_id == client.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    db.session.commit()
    if forget_all(current_app):
        click.echo(f"revoked {name!r}")
    else:
        seconds = current_app.config["CREDENTIAL_CACHE_SECONDS"]
        click.echo(f"revoked {name!r}; Redis was not reached (REDIS_URL unset or down), so "
                   f"running web workers may accept its key for up to {seconds} s more")


def register(app: Flask) -> None:
    app.cli.add_command(group)
