"""The README's run command: with no Redis and no database given, it serves anyway."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import requests

from adapter.sandbox.process import ManagedProcess, free_port

ROOT = Path(__file__).resolve().parent.parent


def test_serve_runs_on_embedded_defaults(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("REDIS_URL", "DATABASE_URL") and not k.startswith("ADAPTER_")}
    env["ADAPTER_DATABASE_URL"] = f"sqlite:///{tmp_path / 'adapter.sqlite3'}"
    exe = Path(sys.executable).parent / "helpline-adapter"
    serve = ManagedProcess([str(exe), "serve", "--port", str(port)], env=env,
                           ready_url=f"http://127.0.0.1:{port}/healthz", name="serve", cwd=ROOT)
    serve.start(timeout=60)
    try:
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
        ready = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        assert ready.status_code == 200, serve.output()
        assert ready.json()["checks"] == {"database": "ok", "redis": "ok"}
    finally:
        serve.stop()
