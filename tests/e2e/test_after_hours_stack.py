"""Opening hours over real processes (:class:`LocalStack`): gunicorn, a delivery worker
with its relay, the sandbox helpline, RapidPro and mailroom. The demo site is closed
today (a holiday in its ``[hours]``), so the real clock is outside its hours.

RapidPro: the start is accepted and held, the chatbot's ``after_hours`` flow starts at
once with tomorrow's opening, nothing reaches the helpline; the site's file then changes
(the holiday lifted) and the worker restarts: the held conversation opens, in order.
Weni, ``outside = "close"``: the ticket hears ``after_hours_text`` with the opening in the
site's wall time and is closed; nothing reaches the helpline."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import requests

from adapter.demo import AFTER_HOURS_ZONE, after_hours_table
from adapter.sandbox.stack import FLOWS, LocalStack, write_demo_site
from tests.support.waiting import wait_until

SETTINGS = {"RETRY_SCHEDULE": [0.2, 0.5, 1], "SWEEP_INTERVAL_SECONDS": 0.2}


def tomorrow_at_eight() -> datetime:
    zone = ZoneInfo(AFTER_HOURS_ZONE)
    return datetime.combine(datetime.now(zone).date() + timedelta(days=1),
                            datetime.min.time().replace(hour=8), tzinfo=zone)


@pytest.fixture
def held_stack(redis_url):
    with LocalStack(redis_url=redis_url, settings=dict(SETTINGS),
                    hours=after_hours_table("hold")) as running:
        yield running


def test_held_after_hours_then_opened_by_a_schedule_change(held_stack):
    stack = held_stack
    http = stack.session()
    body = {"contact": {"uuid": "6a0c1e2f-3b4d-4c5e-8f9a-0b1c2d3e4f5a"},
            "location": "Nairobi", "conversation_id": "night-1", "text": "are you there",
            "message_id": "night-1-m0"}
    started = http.post(f"{stack.url}/v1/conversations", json=body, timeout=10)
    assert started.status_code == 201, started.text
    opening = tomorrow_at_eight()
    expected = {"next_opening": opening.astimezone(ZoneInfo("UTC")).strftime(
                    "%Y-%m-%dT%H:%M:%SZ"),
                "next_opening_local": opening.isoformat(), "timezone": AFTER_HOURS_ZONE}
    assert started.json()["after_hours"] == {**expected, "held": True}
    session = started.json()["id"]
    sent = http.post(f"{stack.url}/v1/conversations/night-1/messages", timeout=10,
                     json={"text": "hello?", "message_id": "night-1-m1"})
    assert sent.status_code == 202

    starts = wait_until(lambda: stack.rapidpro.client.records("flow_starts"),
                        what="the after_hours flow start")
    assert starts[0]["body"]["flow"] == FLOWS["after_hours"]
    assert starts[0]["body"]["params"] == {
        "event": "after_hours", "conversation_id": "night-1", "session_id": session,
        "counsellor": None, **expected, "held": True, "language": None}
    deadline = time.monotonic() + 1.5  # several sweeps and drains: still nothing sent
    while time.monotonic() < deadline:
        assert stack.helpline.client.records("messages") == []
        time.sleep(0.1)
    assert http.get(f"{stack.url}/v1/conversations/night-1", timeout=10).json()["state"] \
        == "requested"

    write_demo_site(stack.workdir / "countries", stack.helpline.api_url, stack.rapidpro.url)
    for worker in [p for p in stack.processes if p.name == "worker"]:
        worker.close()
        stack.processes.remove(worker)
    stack.start_worker()
    arrived = wait_until(lambda: len(m := stack.helpline.client.records(
        "messages", session_id=session)) >= 2 and m, what="the held messages, at the opening")
    assert [m["message"] for m in sorted(arrived, key=lambda m: m["session_seq"])] == [
        "are you there", "hello?"]
    assert wait_until(lambda: http.get(f"{stack.url}/v1/conversations/night-1", timeout=10)
                      .json()["state"] == "waiting", what="waiting at the helpline")


@pytest.fixture
def weni_stack(redis_url):
    with LocalStack(redis_url=redis_url, settings=dict(SETTINGS), mailroom=True,
                    mailroom_args=("--retry-backoff", "0.2"),
                    hours=after_hours_table("close")) as running:
        yield running


def test_a_weni_ticket_after_hours_hears_the_opening_and_is_closed(weni_stack):
    stack = weni_stack
    control = f"{stack.mailroom_sandbox.url}/_sandbox"
    opened = requests.post(f"{control}/tickets/open", timeout=30, json={
        "contact": {"name": "Test child", "urns": ["whatsapp:254700000009"]},
        "body": "help"}).json()
    assert opened["ok"] and opened["status"] == 201, opened
    mailroom = stack.mailroom_sandbox.client
    [message] = mailroom.wait_for(lambda ms: len(ms) >= 1, kind="messages", timeout=20)
    opening = tomorrow_at_eight()
    assert message["sender"]["type"] == "system"
    assert message["text"] == (f"The helpline is closed now. It opens again on "
                               f"{opening.strftime('%A')} at 08:00 ({AFTER_HOURS_ZONE}). "
                               "If you are in danger, call 116.")
    wait_until(lambda: any(t["status"] == "closed" for t in mailroom.records("tickets")),
               timeout=20, what="the ticket closed")
    detail = stack.session().get(f"{stack.url}/v1/conversations/{opened['external_id']}",
                                 timeout=10).json()
    assert (detail["state"], detail["closed_by"]) == ("closed", "after_hours")
    assert stack.helpline.client.records("messages") == []
