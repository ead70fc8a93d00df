"""``helpline-adapter worker`` as a real process: SIGTERM ends it (warm), whether it is
idle on the queue or waiting for an unreachable Redis — a supervisor's stop must never
need the SIGKILL that follows it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from adapter.sandbox.process import ManagedProcess, free_port

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(sys.executable).parent / "helpline-adapter"


@pytest.fixture
def env(tmp_path, redis_url) -> dict:
    countries = tmp_path / "countries"
    countries.mkdir()
    env = {**os.environ, "ADAPTER_COUNTRIES_DIR": str(countries),
           "DATABASE_URL": f"sqlite:///{tmp_path / 'worker.sqlite3'}",
           "REDIS_URL": redis_url, "ADAPTER_SECRET_KEY": "worker-test",
           "ADAPTER_DELIVERY_QUEUE": f"worker-test-{tmp_path.name}"}
    subprocess.run([str(SCRIPT), "db", "upgrade"], env=env, cwd=ROOT, check=True,
                   capture_output=True, timeout=60)
    return env


def started_then_stopped(env: dict, ready_log: str) -> tuple[int | None, str]:
    """Start ``helpline-adapter worker``, wait for ``ready_log``, SIGTERM it (SIGKILL after
    8 s: ManagedProcess.stop); its exit code and output."""
    worker = ManagedProcess([str(SCRIPT), "worker"], env=env, cwd=ROOT, name="worker",
                            ready_log=ready_log)
    worker.start(timeout=30)
    try:
        code = worker.stop(timeout=8.0)
        return code, worker.output()
    finally:
        worker.close()


def test_sigterm_stops_an_idle_worker_cleanly(env):
    # RQ says it is in its loop ("Listening on") only at DEBUG: its lines stay below INFO.
    code, output = started_then_stopped({**env, "ADAPTER_LOG_LEVEL": "DEBUG"}, "Listening on")
    assert code == 0, output[-2000:]
    assert "worker.stopped" in output
    assert output.count("worker.started") == 1  # not restarted after the signal


def test_sigterm_stops_a_worker_waiting_for_redis(env):
    unreachable = f"redis://127.0.0.1:{free_port()}/0"
    code, output = started_then_stopped({**env, "REDIS_URL": unreachable},
                                        "worker.redis_unavailable")
    assert code == 0, output[-2000:]
