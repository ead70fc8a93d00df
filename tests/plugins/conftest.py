"""Fixtures for the plugin tests: the sandbox helpline as a real process, the adapter
served over real HTTP (so the helpline can call it back), and site files."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from werkzeug.serving import make_server

from adapter.sandbox.control import RunningSandbox, start_sandbox
from plugins.openchs import client as openchs_client
from tests.support.sites import write_site

HELPLINE_USER = "adapter-ke"
HELPLINE_PASSWORD = "helpline-secret"
CALLBACK_USER = "openchs-ke"
CALLBACK_PASSWORD = "callback-secret"


@pytest.fixture(scope="session")
def helpline_process() -> Iterator[RunningSandbox]:
    sandbox = start_sandbox(
        "helpline",
        env={"SANDBOX_HELPLINE_USERNAME": HELPLINE_USER,
             "SANDBOX_HELPLINE_PASSWORD": HELPLINE_PASSWORD},
    )
    yield sandbox
    sandbox.stop()


@pytest.fixture
def helpline(helpline_process: RunningSandbox) -> RunningSandbox:
    """The sandbox helpline, reset, with an empty token cache on our side."""
    helpline_process.client.reset()
    openchs_client.tokens.clear()
    yield helpline_process
    openchs_client.tokens.clear()


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def openchs_site(folder: Path, code: str, base_url: str, **helpline) -> Path:
    """An OpenCHS site file; secrets as ``${ENV}`` refs, the values set by the caller."""
    return write_site(
        folder, code, name=f"OpenCHS {code}", plugin="openchs",
        routing={"locations": [f"{code}-land"], "urn_prefixes": [f"tel:+{len(code)}99"]},
        helpline={"base_url": base_url, "username": "${TEST_OPENCHS_USER}",
                  "password": "${TEST_OPENCHS_PASSWORD}",
                  "callback_username": "${TEST_CALLBACK_USER}",
                  "callback_password": "${TEST_CALLBACK_PASSWORD}", **helpline},
    )


@pytest.fixture
def openchs_env(monkeypatch) -> None:
    monkeypatch.setenv("TEST_OPENCHS_USER", HELPLINE_USER)
    monkeypatch.setenv("TEST_OPENCHS_PASSWORD", HELPLINE_PASSWORD)
    monkeypatch.setenv("TEST_CALLBACK_USER", CALLBACK_USER)
    monkeypatch.setenv("TEST_CALLBACK_PASSWORD", CALLBACK_PASSWORD)


class ServedApp:
    """The adapter app on a real port, in a thread of this process."""

    def __init__(self, app) -> None:
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        # Request threads are joined on close: a callback still in flight must not hold
        # locks into the next test (whose fixture empties the tables).
        self.server.daemon_threads = False
        self.url = f"http://127.0.0.1:{self.server.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()  # joins the request threads still running
        self.thread.join(5)


@pytest.fixture
def serve():
    served: list[ServedApp] = []

    def start(app) -> ServedApp:
        served.append(ServedApp(app))
        return served[-1]

    yield start
    for item in served:
        item.stop()


def served_world(app_factory, helpline: RunningSandbox, serve, folder: Path):
    """The adapter over the site files of ``folder`` (site ``ke`` at the sandbox), served
    on a port the sandbox's counsellors call back: the app, its test client, a chatbot's
    auth header and the sandbox's client."""
    from tests.conftest import make_client

    app = app_factory(countries=folder)
    served = serve(app)
    helpline.client.configure(callback_url=f"{served.url}/v1/sites/ke/openchs/",
                              callback_username=CALLBACK_USER,
                              callback_password=CALLBACK_PASSWORD, callback_backoff=0.05)
    auth = {"Authorization": f"Token {make_client(app)}"}
    return app, app.test_client(), auth, helpline.client
