"""Client for a running sandbox's ``/_sandbox/`` control API, and a one-call launcher.

Tests read what a peer received, flip its faults and make its counsellors act through
:class:`SandboxClient`; :func:`start_sandbox` runs a peer as a real subprocess. Waiting
is done by polling with a deadline (:meth:`SandboxClient.wait_for`), never by sleeping
a guessed amount.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from adapter.sandbox.process import ManagedProcess, free_port

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class SandboxClient:
    """Talks to one sandbox's control API at ``base_url`` (scheme, host and port)."""

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._http = requests.Session()

    # -- inspection -----------------------------------------------------------------------

    def health(self) -> bool:
        """True when the sandbox answers its health check."""
        try:
            return self._http.get(self._url("health"), timeout=self.timeout).ok
        except requests.RequestException:
            return False

    def records(self, kind: str | None = None, **filters: Any) -> Any:
        """Recorded items of ``kind`` (a list), or every kind (a dict) when None.

        ``filters`` keep items whose field equals the value, e.g. ``session_id="s1"``.
        """
        params = {key: _as_text(value) for key, value in filters.items()}
        if kind is not None:
            params["kind"] = kind
        return self._get("records", params)

    def counts(self) -> dict[str, int]:
        """How many items each kind holds."""
        return self._get("stats")["counts"]

    def faults(self) -> dict[str, Any]:
        return self._get("faults")

    def config(self) -> dict[str, Any]:
        """The running config (secrets masked)."""
        return self._get("config")

    def sessions(self) -> list[dict[str, Any]]:
        """Helpline only: each chat's state, counsellor and reply count."""
        return self._get("sessions")

    # -- changes --------------------------------------------------------------------------

    def reset(self) -> None:
        """Clear records, faults, runtime config and chats (helpline tokens stay valid)."""
        self._post("reset", {})

    def set_faults(self, **switches: Any) -> dict[str, Any]:
        """Set fault switches, e.g. ``set_faults(fail_next=2, fail_status=503)``."""
        return self._post("faults", switches)

    def configure(self, **settings: Any) -> dict[str, Any]:
        """Change config at runtime, e.g. ``configure(hunting=True, callback_url=...)``."""
        return self._post("config", settings)

    def counsellor(self, action: str, **body: Any) -> dict[str, Any]:
        """Helpline only: ``assign``/``reply``/``close``/``ack`` now; the callback outcome."""
        return self._post(f"counsellor/{action}", body)

    # -- waiting --------------------------------------------------------------------------

    def wait_for(
        self,
        predicate: Callable[[Any], Any],
        timeout: float = 10.0,
        *,
        kind: str | None = None,
        interval: float = 0.05,
        **filters: Any,
    ) -> Any:
        """Poll ``records(kind, **filters)`` until ``predicate(records)`` is truthy.

        Returns the records that satisfied it; raises ``TimeoutError`` (showing what
        was last seen) at the deadline.
        """
        deadline = time.monotonic() + timeout
        while True:
            seen = self.records(kind, **filters)
            if predicate(seen):
                return seen
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"condition not met within {timeout}s; last records: {seen!r}"[:4000]
                )
            time.sleep(interval)

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Poll the health check until it answers."""
        deadline = time.monotonic() + timeout
        while not self.health():
            if time.monotonic() >= deadline:
                raise TimeoutError(f"sandbox at {self.base_url} not healthy within {timeout}s")
            time.sleep(0.05)

    # -- plumbing -------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return f"{self.base_url}/_sandbox/{path}"

    def _get(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        response = self._http.get(self._url(path), params=params, timeout=self.timeout)
        return _json_or_raise(response)

    def _post(self, path: str, body: Mapping[str, Any]) -> Any:
        response = self._http.post(self._url(path), json=dict(body), timeout=self.timeout)
        return _json_or_raise(response)


def _json_or_raise(response: requests.Response) -> Any:
    """The JSON answer; a 4xx/5xx raises with the sandbox's explanation in the message."""
    if not response.ok:
        raise requests.HTTPError(
            f"{response.status_code} from {response.url}: {response.text[:500]}", response=response
        )
    return response.json()


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass
class RunningSandbox:
    """A sandbox subprocess and a control client for it."""

    kind: str
    process: ManagedProcess
    client: SandboxClient
    url: str  # http://host:port (no path)
    api_url: str  # where the adapter should point: the helpline's base path, RapidPro's root

    def stop(self) -> None:
        self.process.close()


def start_sandbox(
    kind: str,
    *args: str,
    port: int | None = None,
    host: str = "127.0.0.1",
    env: Mapping[str, str] | None = None,
    timeout: float = 15.0,
) -> RunningSandbox:
    """Run ``python -m adapter.sandbox <kind> --port N <args>`` and wait until healthy."""
    port = port or free_port(host)
    url = f"http://{host}:{port}"
    argv = [
        sys.executable,
        "-m",
        "adapter.sandbox",
        kind,
        "--host",
        host,
        "--port",
        str(port),
        *args,
    ]
    pythonpath = os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))
    process = ManagedProcess(
        argv,
        env={"PYTHONPATH": pythonpath, **(env or {})},
        ready_url=f"{url}/_sandbox/health",
        name=f"sandbox-{kind}",
        cwd=PROJECT_ROOT,
    )
    process.start(timeout)
    client = SandboxClient(url)
    api_url = url + (client.config().get("base_path") or "/")
    return RunningSandbox(kind, process, client, url, api_url)
