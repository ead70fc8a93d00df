"""A third-party plugin, registered only through its entry point, is discovered and
delivers — the example package of ``docs/plugins.md``, installed as a throwaway
distribution (a ``*.dist-info`` with ``entry_points.txt``) on ``sys.path``."""

from __future__ import annotations

import ast
import importlib.metadata
import sys
from pathlib import Path

import pytest

from adapter.delivery.engine import drain
from adapter.sandbox.control import start_sandbox
from plugins import ENTRY_POINT_GROUP
from plugins.manager import helpline_kinds, make_plugin_manager
from tests.conftest import make_client
from tests.support.receiver import receiving
from tests.support.sites import write_site

CONTACT = "5b7b4a0e-8a4c-4f3e-9d55-0c7f2a1d9e01"
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


@pytest.fixture(scope="module")
def rapidpro_process():
    sandbox = start_sandbox("rapidpro", "--token", "tok-example=example")
    yield sandbox
    sandbox.stop()


def test_the_example_is_under_sixty_lines_of_code():
    """The doc's promise: a complete plugin, sending and receiving, in under 60 lines."""
    source = (EXAMPLE / "src/helpline_adapter_example/__init__.py").read_text()
    tree = ast.parse(source)
    docstrings = {line for node in ast.walk(tree)
                  if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
                  and ast.get_docstring(node)
                  for line in range(node.body[0].lineno, node.body[0].end_lineno + 1)}
    code = [line for number, line in enumerate(source.splitlines(), 1)
            if line.strip() and not line.strip().startswith("#") and number not in docstrings]
    assert len(code) < 60


def test_example_plugin_carries_a_whole_conversation(installed_example, app_factory, tmp_path,
                                                     monkeypatch, rapidpro_process):
    """Installed from its folder, the doc's example sends (open, messages, close) and
    receives (a counsellor's reply, its repeat, a forged call, the counsellor's close)
    through routes the core mounts for it; the reply reaches RapidPro."""
    rapidpro = rapidpro_process
    rapidpro.client.reset()
    with receiving() as receiver:
        monkeypatch.setenv("EXAMPLE_API_KEY", "k-123")
        monkeypatch.setenv("EXAMPLE_CALLBACK_KEY", "cb-456")
        folder = tmp_path / "countries-example"
        write_site(folder, "ex", name="Example", plugin="example",
                   routing={"locations": ["Exampleland"]},
                   helpline={"url": receiver.url, "api_key": "${EXAMPLE_API_KEY}",
                             "callback_key": "${EXAMPLE_CALLBACK_KEY}"},
                   rapidpro={"base_url": rapidpro.url, "token": "tok-example"})
        app = app_factory(countries=folder, plugins=())
        client = app.test_client()
        chatbot = {"Authorization": f"Token {make_client(app)}"}
        started = client.post("/v1/conversations", headers=chatbot, json={
            "location": "Exampleland", "contact": {"uuid": CONTACT}, "text": "hello"})
        assert started.status_code == 201, started.json
        conversation_id = started.json["id"]
        with app.app_context():
            assert drain(app).done == 2
        assert [r["json"]["event"] for r in receiver.received] == ["open", "message"]
        assert receiver.received[1]["json"]["text"] == "hello"
        assert {r["headers"]["X-Api-Key"] for r in receiver.received} == {"k-123"}
        assert receiver.received[0]["json"]["session_id"] == conversation_id

        helpline = {"X-Api-Key": "cb-456"}
        reply = {"session_id": conversation_id, "message_id": "hl-1", "text": "I am here",
                 "counsellor": "c-7"}
        forged = client.post("/v1/sites/ex/example/reply/", json=reply,
                             headers={"X-Api-Key": "guess"})
        assert forged.status_code == 401 and forged.json["code"] == "unauthorized"
        invalid = client.post("/v1/sites/ex/example/reply/", headers=helpline,
                              json={"session_id": conversation_id, "text": "no id"})
        assert invalid.status_code == 400 and "message_id" in invalid.json["errors"]
        first = client.post("/v1/sites/ex/example/reply/", json=reply, headers=helpline)
        assert first.status_code == 201, first.json
        again = client.post("/v1/sites/ex/example/reply/", json=reply, headers=helpline)
        assert again.status_code == 200 and again.json == first.json  # a repeat: no new message
        with app.app_context():
            drain(app)
        [broadcast] = rapidpro.client.records("broadcasts")
        assert broadcast["body"]["text"].endswith("I am here")
        assert broadcast["body"]["contacts"] == [CONTACT]

        ended = client.post("/v1/sites/ex/example/end/", headers=helpline,
                            json={"session_id": conversation_id})
        assert ended.status_code == 200 and ended.json["status"] == "closed"
        shown = client.get(f"/v1/conversations/{conversation_id}", headers=chatbot)
        assert shown.json["state"] == "closed" and shown.json["closed_by"] == "counsellor"

        result = app.test_cli_runner().invoke(args=["sites", "check", "ex"])
        assert result.exit_code == 0 and "ping accepted" in result.output


def test_the_example_callbacks_are_in_the_openapi_document(installed_example, app_factory,
                                                           tmp_path, monkeypatch):
    monkeypatch.setenv("EXAMPLE_API_KEY", "k")
    monkeypatch.setenv("EXAMPLE_CALLBACK_KEY", "c")
    folder = tmp_path / "countries-example"
    write_site(folder, "ex", name="Example", plugin="example",
               routing={"locations": ["Exampleland"]},
               helpline={"url": "http://127.0.0.1:9/", "api_key": "${EXAMPLE_API_KEY}",
                         "callback_key": "${EXAMPLE_CALLBACK_KEY}"})
    paths = app_factory(countries=folder, plugins=()).test_client().get(
        "/openapi.json").json["paths"]
    for action in ("reply", "end"):
        operation = paths[f"/v1/sites/{{site}}/example/{action}/"]["post"]
        assert {"200", "201", "400", "401", "404"} <= set(operation["responses"])


def test_the_doc_shows_the_example_as_it_is():
    """``docs/plugins.md`` prints the example's code: the block must be the file."""
    doc = (EXAMPLE.parents[1] / "plugins.md").read_text()
    source = (EXAMPLE / "src/helpline_adapter_example/__init__.py").read_text()
    code = source[source.index("import hmac"):]
    assert f"```python\n{code}```" in doc
