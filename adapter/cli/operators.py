"""``helpline-adapter operators``: accounts of the operations console (``/console``)."""

from __future__ import annotations

import os

import click
from flask import Flask
from flask.cli import AppGroup

from ..audit import audit
from ..auth import hash_password
from ..extensions import db
from ..models import OPERATOR_ROLES, Operator, utcnow
from ..state import state_of

PASSWORD_ENV = "HELPLINE_ADAPTER_OPERATOR_PASSWORD"  # noqa: S105 (a variable's name)
MIN_PASSWORD = 12
MAX_NAME = 100

group = AppGroup("operators", help="Create, list and disable operations console accounts "
                                   "(passwords stored hashed).")


@group.command("create")
@click.argument("name")
@click.option("--role", type=click.Choice(OPERATOR_ROLES), required=True,
              help="viewer: sees every page; operator: also retries deliveries; "
                   "supervisor: also reads message text (each read audited).")
@click.option("--site", "sites", multiple=True,
              help="Limit the account to this site (repeatable); default every site.")
def create(name: str, role: str, sites: tuple[str, ...]) -> None:
    if not name or len(name) > MAX_NAME or not name.isprintable() or name != name.strip():
        raise click.ClickException(f"a name is 1 to {MAX_NAME} printable characters")
    if db.session.execute(db.select(Operator).where(Operator.name == name)).scalar():
        raise click.ClickException(f"an operator named {name!r} already exists")
    known = {site.code for site in state_of().sites}
    unknown = [code for code in sites if code not in known]
    if unknown:
        raise click.ClickException(f"no site {unknown[0]!r} (see 'sites list')")
    password = os.environ.get("HELPLINE_ADAPTER_OPERATOR_PASSWORD") or click.prompt(
        "Password", hide_input=True, confirmation_prompt=True)
    if len(password) < MIN_PASSWORD:
        raise click.ClickException(f"the password must be at least {MIN_PASSWORD} characters")
    db.session.add(Operator(name=name, role=role, sites=list(sites) or None,
                            password_hash=hash_password(password)))
    audit("cli", "operator_created", operator=name, role=role)
    db.session.commit()
    click.echo(f"created {role} {name!r}"
               + (f" for sites {', '.join(sites)}" if sites else " for every site"))


# `create`'s help names the variable: an f-string is no docstring, so set it here.
create.help = (f"Create console account NAME. Its password is prompted for, or read from "
               f"{PASSWORD_ENV} (at least {MIN_PASSWORD} characters).")


@group.command("list")
def list_operators() -> None:
    """List console accounts (names, roles, sites; never passwords)."""
    rows = db.session.execute(db.select(Operator).order_by(Operator.name)).scalars().all()
    if not rows:
        click.echo("no operators")
    for operator in rows:
        state = "disabled" if operator.disabled_at else "active"
        sites = ",".join(operator.sites) if operator.sites else "*"
        click.echo(f"{operator.name}\t{operator.role}\t{sites}\t{state}")


@group.command("disable")
@click.argument("name")
def disable(name: str) -> None:
    """Disable console account NAME: it can no longer log in, and its open sessions end
    at their next request."""
    operator = db.session.execute(db.select(Operator).where(Operator.name == name)).scalar()
    if operator is None:
        raise click.ClickException(f"no operator named {name!r}")
    now = utcnow()
    operator.disabled_at = operator.disabled_at or now
    operator.sessions_valid_after = now
    audit("cli", "operator_disabled", operator=name)
    db.session.commit()
    click.echo(f"disabled {name!r}")


def register(app: Flask) -> None:
    app.cli.add_command(group)
