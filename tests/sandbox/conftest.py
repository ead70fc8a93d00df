"""Fixtures: each sandbox as a real subprocess, and a stand-in for the adapter's callbacks."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask, jsonify, request
from werkzeug.serving import make_server

from adapter.sandbox.control import RunningSandbox, SandboxClient, start_sandbox

#: The one flow of the sandbox workspace these tests use.
FLOW = "f1a2b3c4-0000-4000-8000-000000000001"

CALLBACK_USER = "helpline-ke"
CALLBACK_PASSWORD = "callback-secret"


@pytest.fixture(scope="module")
def helpline_process() -> Iterator[RunningSandbox]:
    sandbox = start_sandbox("helpline")
    yield sandbox
    sandbox.stop()


@pytest.fixture
def helpline(helpline_process: RunningSandbox) -> RunningSandbox:
    """A running helpline sandbox, reset to its start-up state for this test."""
    helpline_process.client.reset()
    return helpline_process


@pytest.fixture(scope="module")
def rapidpro_process() -> Iterator[RunningSandbox]:
    sandbox = start_sandbox("rapidpro", "--token", "tok-weni=weni", "--token", "tok-other=other",
                            "--flow", f"{FLOW}=Helpline events")
    yield sandbox
    sandbox.stop()


@pytest.fixture
def rapidpro(rapidpro_process: RunningSandbox) -> RunningSandbox:
    """A running RapidPro sandbox, reset to its start-up state for this test."""
    rapidpro_process.client.reset()
    return rapidpro_process


class AdapterStub:
    """The adapter's site callback endpoints, as the helpline sees them.

    Issues DRF-style tokens for ``CALLBACK_USER``, demands ``Authorization: Token``,
    records every callback, and can be told to answer the next requests with given
    statuses or to revoke the token it issued.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[dict[str, Any]] = []
        self.token_requests = 0
        self.valid_token: str | None = None
        self.next_statuses: list[int] = []
        app = Flask("adapter-stub")
        app.add_url_rule("/v1/sites/ke/openchs/token/", "token", self._token, methods=["POST"])
        app.add_url_rule("/v1/sites/ke/openchs/<path:rest>", "cb", self._callback, methods=["POST"])
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.port}/v1/sites/ke/openchs/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _token(self) -> Any:
        body = request.get_json(silent=True) or {}
        with self.lock:
            self.token_requests += 1
            if (body.get("username"), body.get("password")) != (CALLBACK_USER, CALLBACK_PASSWORD):
                return jsonify({"detail": "bad credentials"}), 400
            self.valid_token = secrets.token_hex(8)
            return jsonify({"token": self.valid_token})

    def _callback(self, rest: str) -> Any:
        with self.lock:
            if self.next_statuses:
                return jsonify({"code": "forced"}), self.next_statuses.pop(0)
            if request.headers.get("Authorization") != f"Token {self.valid_token}":
                return jsonify({"code": "unauthorized"}), 401
            self.calls.append({"path": rest, "json": request.get_json(), "time": time.time()})
            return jsonify({"status": "ok"}), 200

    def revoke_token(self) -> None:
        with self.lock:
            self.valid_token = secrets.token_hex(8)

    def received(self, path_prefix: str = "") -> list[dict[str, Any]]:
        with self.lock:
            return [call for call in self.calls if call["path"].startswith(path_prefix)]

    def wait_for(self, predicate: Callable[[list[dict]], bool], timeout: float = 10.0) -> list:
        """Poll what was received until ``predicate`` holds (no guessed sleeps)."""
        deadline = time.monotonic() + timeout
        while not predicate(self.received()):
            if time.monotonic() >= deadline:
                raise TimeoutError(f"stub saw only {self.received()!r}")
            time.sleep(0.02)
        return self.received()


@pytest.fixture
def adapter_stub() -> Iterator[AdapterStub]:
    stub = AdapterStub()
    stub.thread.start()
    yield stub
    stub.server.shutdown()


@pytest.fixture
def helpline_with_counsellors(
    helpline: RunningSandbox, adapter_stub: AdapterStub
) -> tuple[SandboxClient, AdapterStub]:
    """A helpline whose counsellors call ``adapter_stub`` back, with quick timings."""
    helpline.client.configure(
        callback_url=adapter_stub.url,
        callback_username=CALLBACK_USER,
        callback_password=CALLBACK_PASSWORD,
        callback_backoff=0.05,
        hunting=True,
        answer_delay=0.0,
        reply_delay=0.05,
        offer_timeout=0.2,
    )
    return helpline.client, adapter_stub
