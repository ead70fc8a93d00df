"""Opening hours against real peers: the sandbox helpline (OpenCHS) and the sandbox
RapidPro, each a real process over HTTP, the adapter in-process with its clock
(``AdapterState.clock``) set by the test. Nothing of ours is mocked: the test moves the
clock, then runs what a worker and a relay run (``drain``, ``sweep``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from adapter.sandbox.control import RunningSandbox, start_sandbox
from plugins.openchs import client as openchs_client
from tests.support.sites import write_site

HELPLINE_USER, HELPLINE_PASSWORD = "adapter-hours", "helpline-hours-secret"
CALLBACK_USER, CALLBACK_PASSWORD = "openchs-hours", "callback-hours-secret"
RAPIDPRO_TOKEN = "tok-hours"
FLOWS = {
    "after_hours": "a7e40000-0000-4000-8000-000000000001",
    "no_counsellor": "a7e40000-0000-4000-8000-000000000002",
    "still_waiting": "a7e40000-0000-4000-8000-000000000003",
    "assigned": "a7e40000-0000-4000-8000-000000000004",
}
OPENING_NOTICE = "[a child is waiting: conversation opened]"
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday")
#: Weekdays 08:00-17:00 in London: GMT in winter, BST (UTC+1) from 29 March 2026.
LONDON_OFFICE = {"timezone": "Europe/London", **{day: ["08:00-17:00"] for day in WEEKDAYS}}


class Clock:
    """``AdapterState.clock``: a frozen instant the test moves."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture(scope="module")
def helpline_process() -> Iterator[RunningSandbox]:
    sandbox = start_sandbox("helpline", env={"SANDBOX_HELPLINE_USERNAME": HELPLINE_USER,
                                             "SANDBOX_HELPLINE_PASSWORD": HELPLINE_PASSWORD})
    yield sandbox
    sandbox.stop()


@pytest.fixture
def helpline(helpline_process: RunningSandbox) -> Iterator[RunningSandbox]:
    helpline_process.client.reset()
    openchs_client.tokens.clear()
    yield helpline_process
    openchs_client.tokens.clear()


@pytest.fixture(scope="module")
def rapidpro_process() -> Iterator[RunningSandbox]:
    sandbox = start_sandbox("rapidpro", "--token", f"{RAPIDPRO_TOKEN}=hours-org",
                            *(f"--flow={flow}={event}" for event, flow in FLOWS.items()))
    yield sandbox
    sandbox.stop()


@pytest.fixture
def rapidpro(rapidpro_process: RunningSandbox) -> RunningSandbox:
    rapidpro_process.client.reset()
    return rapidpro_process


@pytest.fixture
def hours_env(monkeypatch) -> None:
    monkeypatch.setenv("HOURS_HELPLINE_USER", HELPLINE_USER)
    monkeypatch.setenv("HOURS_HELPLINE_PASSWORD", HELPLINE_PASSWORD)
    monkeypatch.setenv("HOURS_CALLBACK_USER", CALLBACK_USER)
    monkeypatch.setenv("HOURS_CALLBACK_PASSWORD", CALLBACK_PASSWORD)


def hours_site(folder: Path, helpline: RunningSandbox, rapidpro: RunningSandbox,
               hours: dict | None, code: str = "uk", **policies) -> Path:
    """An OpenCHS site at the sandbox helpline, its events as RapidPro flow starts."""
    data = dict(
        name="Opening hours", plugin="openchs",
        routing={"locations": ["London"], "urn_prefixes": ["tel:+44"]},
        helpline={"base_url": helpline.api_url, "username": "${HOURS_HELPLINE_USER}",
                  "password": "${HOURS_HELPLINE_PASSWORD}",
                  "callback_username": "${HOURS_CALLBACK_USER}",
                  "callback_password": "${HOURS_CALLBACK_PASSWORD}",
                  "opening_notice": OPENING_NOTICE},
        rapidpro={"base_url": rapidpro.url, "token": RAPIDPRO_TOKEN, "flows": FLOWS,
                  "rate_per_hour": 360000},
        policies={"assignment_timeout": 300, **policies},
    )
    if hours is not None:
        data["hours"] = hours
    return write_site(folder, code, **data)
