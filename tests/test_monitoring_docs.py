"""docs/monitoring: the alert rules parse, the dashboard imports, and every metric they
use is one a real /metrics scrape has."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import yaml

from tests.test_metrics import _history, monitor

DOCS = Path(__file__).resolve().parents[1] / "docs" / "monitoring"
RULES = DOCS / "alerts.yml"
DASHBOARD = DOCS / "grafana-dashboard.json"
METRIC = re.compile(r"\bhelpline_adapter_[a-z_]+\b")
DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")


def rules() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"]
            for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    board = json.loads(DASHBOARD.read_text())["dashboard"]
    exprs = [t["expr"] for panel in board["panels"] for t in panel["targets"]]
    exprs += [v["definition"] for v in board["templating"]["list"] if "definition" in v]
    return exprs


def test_the_rules_have_the_shape_prometheus_loads():
    document = yaml.safe_load(RULES.read_text())
    assert set(document) == {"groups"}
    for group in document["groups"]:
        assert set(group) <= {"name", "interval", "rules"} and group["name"] and group["rules"]
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
            assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", rule["alert"])
            assert isinstance(rule["expr"], str) and METRIC.search(rule["expr"])
            assert DURATION.match(rule.get("for", "0s")), rule
            assert rule["labels"]["severity"] in ("critical", "warning")
            assert all(isinstance(v, str) for v in rule["labels"].values())
            assert {"summary", "description"} <= set(rule["annotations"])
    alerts = {rule["alert"] for rule in rules()}
    assert {"HelplineAdapterDeliveryOverdue", "HelplineAdapterSiteFailing",
            "HelplineAdapterDeadLetter", "HelplineAdapterChildWaitingTooLong"} <= alerts


def test_promtool_accepts_the_rules_and_their_unit_tests():
    # Never skipped: `./dev test` installs Debian's prometheus package (promtool) as root.
    assert shutil.which("promtool"), "promtool is missing: run ./dev test as root (apt-get " \
                                     "install prometheus)"
    checked = subprocess.run(["promtool", "check", "rules", str(RULES)],
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run(["promtool", "test", "rules", str(DOCS / "alerts_test.yml")],
                            capture_output=True, text=True, timeout=60, cwd=DOCS)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_the_dashboard_is_importable_with_a_datasource_variable():
    document = json.loads(DASHBOARD.read_text())
    board = document["dashboard"]
    assert board["title"] and board["uid"] and board["panels"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert METRIC.search(target["expr"]), (panel["title"], target["expr"])
            assert target["expr"].count("(") == target["expr"].count(")")


def used_metric_names() -> set[str]:
    return {name for text in [r["expr"] for r in rules()] + dashboard_exprs()
            for name in METRIC.findall(text)}


def test_every_metric_the_rules_and_dashboard_use_is_in_a_scrape(app, client):
    from tests.support.metrics import names

    _history(app)  # histograms show only once a row has the times they measure
    body = client.get("/metrics", headers=monitor(app)).get_data(as_text=True)

    used = used_metric_names()
    assert len(used) >= 15
    assert used - names(body) == set()
