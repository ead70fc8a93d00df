"""``helpline-adapter sites``: what is configured, and whether it works."""

from __future__ import annotations

import os
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from ..delivery import helpline_calls
from ..delivery.http import session_for
from ..dialects.rapidpro_api.checks import check_rapidpro
from ..state import state_of

group = AppGroup("sites", help="List and check the configured helpline sites.")


@group.command("list")
def list_sites() -> None:
    """List sites: code, name, plugin, routing, file (never secrets)."""
    sites = list(state_of().sites)
    if not sites:
        click.echo("no sites")
    for site in sites:
        routing = ",".join(site.routing.locations + site.routing.urn_prefixes) or "-"
        chatbot = "rapidpro" if site.rapidpro else "-"
        click.echo(f"{site.code}\t{site.name}\t{site.plugin}\t{routing}\t{chatbot}\t{site.source}")


@group.command("check")
@click.argument("code", required=False)
def check(code: str | None) -> None:
    """Check SITE (or all): config valid, secrets present, helpline reachable and login
    accepted, RapidPro token accepted and every configured flow found, a re-hosting
    site's directory writable (and its private hosts named); texts a served language
    lacks, and the fallback used. One line per site side and per problem; exits 1 when
    any fails (a deploy script can gate on it; a missing text is not a failure)."""
    state = state_of()
    sites = [state.sites.get(code)] if code else list(state.sites)
    if code and sites[0] is None:
        raise click.ClickException(f"no site {code!r}")
    failures = 0
    timeout = (current_app.config["HTTP_CONNECT_TIMEOUT"], current_app.config["HTTP_READ_TIMEOUT"])
    for site in sites:
        if site.missing_secrets:
            failures += 1
            click.echo(f"{site.code}: FAIL missing environment variables: "
                       + ", ".join(site.missing_secrets))
            continue
        for gap in site.texts.gaps():  # a fallback, not a failure: the child is still told
            click.echo(f"{site.code}: {gap}")
        http = session_for(site.code, "check", timeout, site.verify_for("helpline"))
        result = helpline_calls.check(state, site, http)
        if result is None:
            click.echo(f"{site.code}: ok (config valid; "
                       f"the {site.plugin} plugin has no live check)")
        else:
            failures += 0 if result.ok else 1
            click.echo(f"{site.code}: {'ok' if result.ok else 'FAIL'} {result.detail}")
        if site.rapidpro is not None:
            http = session_for(site.code, "check-chatbot", timeout, site.verify_for("chatbot"))
            for finding in check_rapidpro(site.rapidpro, http):
                failures += 0 if finding.ok else 1
                click.echo(f"{site.code}: rapidpro {'ok' if finding.ok else 'FAIL'} "
                           f"{finding.detail}")
        failures += _check_rehost(site)
    if failures:
        raise click.exceptions.Exit(1)


def _check_rehost(site) -> int:
    """``[attachments.rehost]``, when on: its directory usable, and the escape hatch named."""
    rehost = site.attachments.rehost
    if not rehost.enabled:
        return 0
    failures = 0
    folder = Path(rehost.directory)
    existing = folder if folder.exists() else next(
        (parent for parent in folder.parents if parent.exists()), None)
    if existing is not None and existing.is_dir() and os.access(existing, os.W_OK | os.X_OK):
        click.echo(f"{site.code}: rehost ok directory {rehost.directory} is writable")
    else:
        failures += 1
        click.echo(f"{site.code}: rehost FAIL directory {rehost.directory} is not writable")
    if rehost.unsafe_allow_private_hosts:
        click.echo(f"{site.code}: rehost WARNING unsafe_allow_private_hosts lets downloads "
                   "reach private addresses: " + ", ".join(rehost.unsafe_allow_private_hosts)
                   + " (tests and the local sandbox only)")
    return failures


def register(app: Flask) -> None:
    app.cli.add_command(group)
