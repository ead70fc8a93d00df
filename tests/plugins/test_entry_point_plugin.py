"""A third-party plugin, registered only through its entry point, is discovered and
delivers — the example package of ``docs/plugins.md``, installed as a throwaway
distribution (a ``*.dist-info`` with ``entry_points.txt``) on ``sys.path``."""

from __future__ import annotations

import importlib.metadata
import sys
import threading
from pathlib import Path

import pytest
from flask import Flask, request
from werkzeug.serving import make_server

from adapter.delivery.engine import drain
from plugins import ENTRY_POINT_GROUP
from plugins.manager import helpline_kinds, make_plugin_manager
from tests.conftest import make_client
from tests.support.sites import write_site

EXAMPLE = (Path(__file__).resolve().parents[2]
           / "docs/examples/helpline-adapter-example-plugin")


def entry_point_line() -> str:
    """The entry point exactly as the example's pyproject declares it."""
    import tomllib

    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    [(name, target)] = project["entry-points"][ENTRY_POINT_GROUP].items()
    return f"{name} = {target}"


@pytest.fixture
def installed_example(tmp_path, monkeypatch):
    dist = tmp_path / "site" / "helpline_adapter_example_plugin-0.1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: helpline-adapter-example-plugin\nVersion: 0.1.0\n")
    (dist / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{entry_point_line()}\n")
    monkeypatch.syspath_prepend(str(EXAMPLE / "src"))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    yield
    sys.modules.pop("helpline_adapter_example", None)  # the next test imports it afresh


def test_example_is_found_through_importlib_metadata_entry_points(installed_example):
    found = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    assert [ep.value for ep in found if ep.name == "example"] == ["helpline_adapter_example"]
    assert "example" in helpline_kinds(make_plugin_manager())


def test_without_it_the_kind_is_unknown():
    assert "example" not in helpline_kinds(make_plugin_manager())


class Receiver:
    def __init__(self) -> None:
        self.received: list[dict] = []
        app = Flask("example-helpline")

        @app.post("/in")
        def receive():
            self.received.append({"key": request.headers.get("X-Api-Key"),
                                  **request.get_json()})
            return {"ok": True}

        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.port}/in"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_example_plugin_delivers_a_conversation(installed_example, app_factory, tmp_path,
                                                monkeypatch):
    receiver = Receiver()
    try:
        monkeypatch.setenv("EXAMPLE_API_KEY", "k-123")
        folder = tmp_path / "countries-example"
        write_site(folder, "ex", name="Example", plugin="example",
                   routing={"locations": ["Exampleland"]},
                   helpline={"url": receiver.url, "api_key": "${EXAMPLE_API_KEY}"})
        app = app_factory(countries=folder, plugins=())
        client = app.test_client()
        key = make_client(app)
        response = client.post("/v1/conversations", headers={"Authorization": f"Token {key}"},
                               json={"location": "Exampleland", "contact": {"uuid": "c-1"},
                                     "text": "hello"})
        assert response.status_code == 201, response.json
        with app.app_context():
            assert drain(app).done == 2

        assert [r["event"] for r in receiver.received] == ["open", "message"]
        assert receiver.received[1]["text"] == "hello"
        assert {r["key"] for r in receiver.received} == {"k-123"}
        result = app.test_cli_runner().invoke(args=["sites", "check", "ex"])
        assert result.exit_code == 0 and "ping accepted" in result.output
    finally:
        receiver.server.shutdown()
