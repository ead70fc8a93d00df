"""The export is what a RapidPro/Weni workspace imports: export version 13, flows in the
goflow 13.x spec, every node, exit, router and ``_ui`` entry consistent.

Checks follow RapidPro's importer (``temba/orgs/models.py``, ``Flow.import_flows``) and
goflow's definition rules (``flows/definition``, ``flows/routers``), including the
shape goflow's 14.x migrations expect of a webhook node, so that a current RapidPro
migrates the flows on import without changing what they do.
"""

from __future__ import annotations

import re
import uuid
from collections import Counter

import pytest

from .conftest import CHAT, ESCALATION, EVENT_FLOWS, load_export
from .excellent import references
from .runner import snakify

#: RapidPro's choices for a messaging flow's expiry (``Flow.EXPIRES_CHOICES``).
EXPIRES_CHOICES = {5, 10, 15, 30, 60, 180, 360, 720, 1080, 1440, 2880, 4320, 10080, 20160}
ACTIONS = {"send_msg", "set_contact_field", "set_run_result", "add_contact_groups",
           "remove_contact_groups", "call_webhook", "enter_flow"}
ROUTER_TESTS = {"has_text", "has_only_text", "has_any_word", "has_only_phrase",
                "has_number_eq", "has_number_lt", "has_number_between"}
#: Globals a workspace must set (docs/rapidpro.md); an import creates them empty.
GLOBALS = {"helpline_adapter_url", "helpline_adapter_key"}
#: Context roots a template may read.
ROOTS = {"contact", "fields", "globals", "run", "results", "input", "trigger", "child"}
MAX_CATEGORY_NAME, MAX_RESULT_NAME = 36, 64


def flows():
    return load_export()["flows"]


def nodes():
    return [(flow, node) for flow in flows() for node in flow["nodes"]]


def node_id(item):
    flow, node = item
    return f"{flow['name']}:{node['uuid'][:8]}"


def all_uuids(export: dict) -> list[str]:
    """Every uuid the export defines (not the references to them)."""
    found = [g["uuid"] for g in export["groups"]]
    for flow in export["flows"]:
        found.append(flow["uuid"])
        for node in flow["nodes"]:
            found.append(node["uuid"])
            found += [a["uuid"] for a in node.get("actions", [])]
            found += [e["uuid"] for e in node["exits"]]
            router = node.get("router") or {}
            found += [c["uuid"] for c in router.get("categories", [])]
            found += [c["uuid"] for c in router.get("cases", [])]
    return found


def templates(node: dict) -> list[str]:
    out = []
    for action in node.get("actions", []):
        for key in ("text", "value", "url", "body"):
            if isinstance(action.get(key), str):
                out.append(action[key])
        out += list((action.get("headers") or {}).values())
    router = node.get("router")
    if router:
        out.append(router["operand"])
    return out


def test_the_export_has_rapidpros_top_level_shape(export):
    assert export["version"] == "13"  # Org.CURRENT_EXPORT_VERSION
    assert export["site"].startswith("https://")
    for key in ("flows", "campaigns", "triggers", "fields", "groups"):
        assert isinstance(export[key], list), key
    for field in export["fields"]:
        assert set(field) == {"key", "name", "type"}
        assert re.fullmatch(r"[a-z][a-z0-9_]{0,35}", field["key"])
        assert field["type"] in {"text", "number", "datetime", "state", "district", "ward"}
    for group in export["groups"]:
        assert set(group) == {"uuid", "name", "query"}


def test_every_flow_is_a_13x_messaging_flow_with_unique_names(export):
    names = Counter(flow["name"] for flow in export["flows"])
    assert all(count == 1 for count in names.values()), names
    assert {ESCALATION, CHAT, *EVENT_FLOWS.values()} <= set(names)
    for flow in export["flows"]:
        assert re.fullmatch(r"13\.\d+\.\d+", flow["spec_version"]), flow["name"]
        assert flow["type"] == "messaging"
        assert re.fullmatch(r"[a-z]{3}", flow["language"])
        assert flow["expire_after_minutes"] in EXPIRES_CHOICES, flow["name"]
        assert len(flow["name"]) <= 64
        assert flow["nodes"], flow["name"]
        assert isinstance(flow["localization"], dict)


def test_uuids_are_unique_and_well_formed(export):
    found = all_uuids(export)
    duplicates = [u for u, n in Counter(found).items() if n > 1]
    assert not duplicates
    for value in found:
        parsed = uuid.UUID(value)
        assert str(parsed) == value and parsed.version == 4, value


@pytest.mark.parametrize("item", nodes(), ids=node_id)
def test_each_node_has_actions_exits_and_a_consistent_router(item):
    flow, node = item
    ids = {n["uuid"] for n in flow["nodes"]}
    assert isinstance(node.get("actions", []), list)
    for action in node.get("actions", []):
        assert action["type"] in ACTIONS
        uuid.UUID(action["uuid"])
    assert node["exits"], "a node needs at least one exit"
    for exit_ in node["exits"]:
        destination = exit_.get("destination_uuid")
        assert destination is None or destination in ids, "exit to a node of this flow"
        assert destination != node["uuid"], "an exit back to its own node loops at once"
    router = node.get("router")
    if router is None:
        assert len(node["exits"]) == 1, "a node without router has one exit"
        assert node["actions"], "a node without router has actions"
        return
    assert router["type"] == "switch"
    categories = router["categories"]
    by_uuid = {c["uuid"]: c for c in categories}
    names = [c["name"] for c in categories]
    assert len(set(names)) == len(names), "category names are unique"
    assert all(0 < len(n) <= MAX_CATEGORY_NAME for n in names)
    # categories ↔ exits, one to one
    assert sorted(c["exit_uuid"] for c in categories) == sorted(e["uuid"] for e in node["exits"])
    assert router["default_category_uuid"] in by_uuid
    for case in router["cases"]:
        assert case["type"] in ROUTER_TESTS
        assert case["category_uuid"] in by_uuid
        assert isinstance(case["arguments"], list)
        if case["type"] in {"has_only_text", "has_any_word", "has_only_phrase"}:
            assert len(case["arguments"]) == 1  # goflow 14.3.1 would join them
    reached = {c["category_uuid"] for c in router["cases"]}
    reached.add(router["default_category_uuid"])
    wait = router.get("wait")
    if wait is not None:
        assert wait["type"] == "msg"
        assert router["operand"] == "@input.text"
        if "timeout" in wait:
            assert wait["timeout"]["seconds"] > 0
            assert wait["timeout"]["category_uuid"] in by_uuid
            reached.add(wait["timeout"]["category_uuid"])
    assert reached == set(by_uuid), "every category is reachable"
    if router.get("result_name"):
        assert len(router["result_name"]) <= MAX_RESULT_NAME


@pytest.mark.parametrize("item", nodes(), ids=node_id)
def test_ui_matches_the_node(item):
    flow, node = item
    ui = flow["_ui"]["nodes"]
    assert set(ui) == {n["uuid"] for n in flow["nodes"]}
    entry = ui[node["uuid"]]
    assert isinstance(entry["position"]["left"], int)
    assert isinstance(entry["position"]["top"], int)
    actions = [a["type"] for a in node.get("actions", [])]
    router = node.get("router")
    if "call_webhook" in actions:
        expected = "split_by_webhook"
    elif "enter_flow" in actions:
        expected = "split_by_subflow"
    elif router is None:
        expected = "execute_actions"
    elif "wait" in router:
        expected = "wait_for_response"
    else:
        expected = "split_by_expression"
    assert entry["type"] == expected


@pytest.mark.parametrize("item", [i for i in nodes()
                                  if any(a["type"] == "call_webhook"
                                         for a in i[1].get("actions", []))], ids=node_id)
def test_webhook_nodes_have_the_shape_rapidpro_migrates(item):
    """One call_webhook action, split Success/Failure on its result's category: the
    shape goflow 14.1.0/14.4.1 rewrite to ``@webhook.status`` 200–299 — with more cases,
    a migration would drop them."""
    _, node = item
    (action,) = node["actions"]
    assert action["method"] == "POST"
    assert action["result_name"]
    assert len(action["headers"]) <= 10 and len(action.get("body", "")) <= 20000
    router = node["router"]
    assert router["operand"] == f"@results.{snakify(action['result_name'])}.category"
    assert [c["name"] for c in router["categories"]] == ["Success", "Failure"]
    (case,) = router["cases"]
    assert (case["type"], case["arguments"]) == ("has_only_text", ["Success"])
    by_uuid = {c["uuid"]: c["name"] for c in router["categories"]}
    assert by_uuid[case["category_uuid"]] == "Success"
    assert by_uuid[router["default_category_uuid"]] == "Failure"


@pytest.mark.parametrize("item", [i for i in nodes()
                                  if any(a["type"] == "enter_flow"
                                         for a in i[1].get("actions", []))], ids=node_id)
def test_subflows_are_in_the_export_and_split_on_the_child(item, export):
    _, node = item
    (action,) = node["actions"]
    target = {f["uuid"]: f["name"] for f in export["flows"]}
    assert target.get(action["flow"]["uuid"]) == action["flow"]["name"]
    router = node["router"]
    assert router["operand"] == "@child.run.status"
    assert {c["name"] for c in router["categories"]} == {"Complete", "Expired"}


def test_every_node_is_reachable_from_the_first(export):
    for flow in export["flows"]:
        nodes_ = {n["uuid"]: n for n in flow["nodes"]}
        seen, todo = set(), [flow["nodes"][0]["uuid"]]
        while todo:
            current = todo.pop()
            if current in seen:
                continue
            seen.add(current)
            todo += [e["destination_uuid"] for e in nodes_[current]["exits"]
                     if e.get("destination_uuid")]
        assert seen == set(nodes_), f"{flow['name']}: unreachable nodes"


def test_templates_read_only_what_the_flow_defines(export):
    """Results a flow reads are ones it saves; fields and groups are declared in the
    export; the only globals are the two the guide tells a workspace to set; no
    ``@webhook`` (13.3.0 renamed it: an older engine, like Weni's, reads it otherwise)."""
    fields = {f["key"] for f in export["fields"]}
    groups = {(g["uuid"], g["name"]) for g in export["groups"]}
    for flow in export["flows"]:
        saved = set()
        for node in flow["nodes"]:
            if (node.get("router") or {}).get("result_name"):
                saved.add(snakify(node["router"]["result_name"]))
            for action in node.get("actions", []):
                if action.get("result_name"):
                    saved.add(snakify(action["result_name"]))
                if action["type"] == "set_run_result":
                    saved.add(snakify(action["name"]))
                if action["type"] == "set_contact_field":
                    assert action["field"]["key"] in fields
                for group in action.get("groups", []):
                    assert (group["uuid"], group["name"]) in groups
        for node in flow["nodes"]:
            for template in templates(node):
                assert "@webhook" not in template
                for path in references(template):
                    root, _, rest = path.partition(".")
                    assert root in ROOTS, path
                    if root == "results":
                        assert rest.split(".")[0] in saved, f"{flow['name']}: {path}"
                    if root == "fields":
                        assert rest in fields, path
                    if root == "globals":
                        assert rest in GLOBALS, path
                    if root == "trigger":
                        assert flow["name"] in EVENT_FLOWS.values(), \
                            f"{flow['name']} is not started with params: {path}"


def test_every_event_a_shipped_site_configures_has_a_flow_here():
    import tomllib

    from .conftest import ROOT

    for path in sorted((ROOT / "countries").glob("*.toml")):
        rapidpro = tomllib.loads(path.read_text(encoding="utf-8")).get("rapidpro") or {}
        for event in rapidpro.get("flows", {}):
            assert event in EVENT_FLOWS, f"{path.name}: no flow in the export for {event}"


def test_the_guide_explains_every_flow(export):
    from .conftest import GUIDE

    guide = GUIDE.read_text(encoding="utf-8")
    for flow in export["flows"]:
        short = flow["name"].removeprefix("Helpline: ")
        assert f"**{flow['name']}**" in guide or f"**{short}**" in guide, flow["name"]
    for name in GLOBALS:
        assert f"`{name}`" in guide
