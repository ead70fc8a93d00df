"""Fixtures for the fault suite: one fault stack per session, healed and emptied per test,
and the reliability report each fault test adds its row to."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults import report
from tests.faults.stack import FaultStack, launch, wait_healthy
from tests.support import servers

_written: dict[str, Path] = {}  # the report this run wrote, for the terminal summary


@pytest.fixture(scope="package")
def _fault_stack(tmp_path_factory, postgres_server):
    stack = launch(tmp_path_factory.mktemp("faults"), postgres_server)
    yield stack
    stack.close()
    servers.drop_database(postgres_server, stack.database_name)


@pytest.fixture
def stack(_fault_stack: FaultStack, request) -> FaultStack:
    """The fault stack with every fault healed, tables and sandboxes emptied, one worker."""
    _fault_stack.proxy.restore()
    if _fault_stack.own_redis.server is None:
        _fault_stack.own_redis.start()
    _fault_stack.reset()
    wait_healthy(_fault_stack.url)
    yield _fault_stack
    report_ = getattr(request.node, "rep_call", None)
    if report_ is not None and report_.failed:
        for process in (_fault_stack.gunicorn, *_fault_stack.workers):
            print(f"--- {process.name} output (tail) ---")
            print("\n".join(process.output().splitlines()[-60:]))


@pytest.fixture(scope="session")
def reliability_report(tmp_path_factory) -> Path:
    """Where rows go: ``RELIABILITY_REPORT``, else this run's temporary folder."""
    path = report.default_path() or tmp_path_factory.getbasetemp() / "reliability.json"
    if path.exists():
        path.unlink()
    _written["path"] = path
    return path


@pytest.fixture
def record(reliability_report):
    def add(row: dict) -> dict:
        report.record(reliability_report, row)
        return row

    return add


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    setattr(item, f"rep_{outcome.when}", outcome)
    return outcome


def pytest_terminal_summary(terminalreporter, config):
    path = _written.get("path")
    if path is None or not path.exists():
        return
    terminalreporter.section("reliability under faults")
    terminalreporter.write_line(f"({path}; render with python -m tests.faults.report PATH)")
    terminalreporter.write_line(report.render(report.load(path)))
