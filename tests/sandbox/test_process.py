"""ManagedProcess: the subprocess helper the whole project's integration tests reuse."""

from __future__ import annotations

import sys

import pytest
import requests

from adapter.sandbox.control import PROJECT_ROOT, start_sandbox
from adapter.sandbox.process import ManagedProcess, ProcessError, free_port


def test_a_killed_process_restarts_on_the_same_port() -> None:
    sandbox = start_sandbox("rapidpro")
    try:
        sandbox.process.kill()
        assert not sandbox.process.is_running()
        assert sandbox.process.returncode == -9
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{sandbox.url}/_sandbox/health", timeout=2)

        sandbox.process.restart()
        assert sandbox.client.health()
        assert sandbox.process.output().count("rapidpro sandbox listening") == 2
    finally:
        sandbox.stop()


def test_stop_is_graceful() -> None:
    sandbox = start_sandbox("helpline")
    assert sandbox.process.stop() == 0
    sandbox.stop()


def test_a_process_that_exits_early_reports_its_output() -> None:
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "adapter.sandbox",
        "helpline",
        "--port",
        str(port),
        "--config",
        "/nonexistent/sandbox.json",
    ]
    process = ManagedProcess(
        argv, ready_url=f"http://127.0.0.1:{port}/", name="broken", cwd=PROJECT_ROOT
    )
    with pytest.raises(ProcessError, match="exited with 1 before it was ready") as caught:
        process.start(timeout=10)
    assert "sandbox.json" in str(caught.value)
    process.close()


def test_readiness_can_wait_for_a_log_line() -> None:
    code = (
        "import time; print('warming up', flush=True); time.sleep(0.2);"
        " print('ready', flush=True); time.sleep(30)"
    )
    with ManagedProcess(
        [sys.executable, "-c", code], ready_log="ready\n", name="logger"
    ) as process:
        assert "warming up" in process.output()
        assert process.is_running()
