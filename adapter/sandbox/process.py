"""Start, await, stop and crash real processes for integration tests and benchmarks.

Used for the sandbox peers, and equally for gunicorn and delivery workers: each runs
in its own session (process group) so stopping it also stops the children it forked,
its output goes to a temporary file readable with :meth:`ManagedProcess.output`, and
readiness is polled with a deadline — never a fixed sleep.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType

import requests

POLL_INTERVAL = 0.05
_live: set[ManagedProcess] = set()  # started and not yet stopped, for the atexit net


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the OS picks it; tiny race accepted)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class ProcessError(RuntimeError):
    """The process exited or never became ready; the message ends with its output."""


class ManagedProcess:
    """A subprocess with readiness polling, clean stop, SIGKILL and restart.

    Ready means: ``ready_url`` answers 2xx/3xx, and/or ``ready_log`` appears in its
    output, and/or ``ready_check()`` returns True — whichever are given (none: ready
    as soon as it is started). ``env`` is added to a copy of ``os.environ``.
    """

    def __init__(
        self,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        ready_url: str | None = None,
        name: str | None = None,
        *,
        cwd: str | os.PathLike[str] | None = None,
        ready_log: str | None = None,
        ready_check: Callable[[], bool] | None = None,
    ) -> None:
        self.argv = list(argv)
        self.env = dict(env or {})
        self.ready_url = ready_url
        self.name = name or Path(self.argv[0]).name
        self.cwd = cwd
        self.ready_log = ready_log
        self.ready_check = ready_check
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - lives as long as self
            prefix=f"{self.name}-", suffix=".log", delete=False
        )

    # -- lifecycle ----------------------------------------------------------------------

    def start(self, timeout: float = 15.0) -> ManagedProcess:
        """Start the process and wait until it is ready; raise :class:`ProcessError` if not."""
        if self.is_running():
            raise ProcessError(f"{self.name} is already running")
        self._log.write(f"--- start {self.argv}\n".encode())
        self._log.flush()
        self._proc = subprocess.Popen(
            self.argv,
            env={**os.environ, **self.env},
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() reaches its children
        )
        _live.add(self)
        try:
            self._wait_ready(timeout)
        except ProcessError:
            self.kill()
            raise
        return self

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM the process group, SIGKILL it after ``timeout``; return the exit code."""
        return self._signal_and_wait(signal.SIGTERM, timeout)

    def kill(self) -> int | None:
        """SIGKILL the process group at once (a crash, for tests); return the exit code."""
        return self._signal_and_wait(signal.SIGKILL, 10.0)

    def restart(self, timeout: float = 15.0) -> ManagedProcess:
        """Stop (gracefully) and start again, waiting until ready."""
        self.stop()
        return self.start(timeout)

    # -- inspection -----------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def output(self) -> str:
        """Everything the process (and earlier runs of it) wrote to stdout and stderr."""
        return Path(self._log.name).read_text(encoding="utf-8", errors="replace")

    def __enter__(self) -> ManagedProcess:
        return self.start() if not self.is_running() else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the process and delete its log file."""
        self.stop()
        self._log.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._log.name)

    def __repr__(self) -> str:
        return f"<ManagedProcess {self.name} pid={self.pid} running={self.is_running()}>"

    # -- internals ------------------------------------------------------------------------

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if not self.is_running():
                raise ProcessError(
                    f"{self.name} exited with {self.returncode} before it was ready\n{self._tail()}"
                )
            if self._ready():
                return
            if time.monotonic() >= deadline:
                raise ProcessError(f"{self.name} not ready after {timeout}s\n{self._tail()}")
            time.sleep(POLL_INTERVAL)

    def _ready(self) -> bool:
        if self.ready_log is not None and self.ready_log not in self.output():
            return False
        if self.ready_check is not None and not self.ready_check():
            return False
        return self.ready_url is None or _answers(self.ready_url)

    def _signal_and_wait(self, sig: signal.Signals, timeout: float) -> int | None:
        if self._proc is None:
            return None
        if self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, sig)
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self._proc.pid, signal.SIGKILL)
                self._proc.wait()
        _live.discard(self)
        return self._proc.returncode

    def _tail(self, lines: int = 40) -> str:
        return "\n".join(self.output().splitlines()[-lines:])


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1.0, allow_redirects=False).status_code < 400
    except requests.RequestException:
        return False


def start_process(
    argv: Sequence[str],
    *,
    ready_url: str | None = None,
    env: Mapping[str, str] | None = None,
    name: str | None = None,
    cwd: str | os.PathLike[str] | None = None,
    ready_log: str | None = None,
    timeout: float = 15.0,
) -> ManagedProcess:
    """Build a :class:`ManagedProcess` and start it (ready or raise)."""
    process = ManagedProcess(
        argv, env=env, ready_url=ready_url, name=name, cwd=cwd, ready_log=ready_log
    )
    return process.start(timeout)


@atexit.register
def _stop_leftovers() -> None:
    """A test that forgot to stop a process must not leave it running after pytest."""
    for process in list(_live):
        with contextlib.suppress(Exception):
            process.stop(timeout=3.0)
