"""A Weni ticket opened while its site is closed, in-process against the sandbox mailroom
(a real process that verifies every signed callback): the child hears
``after_hours_text`` with the opening in the site's wall time, as a message from the
system; held, the ticket stays open and reaches the helpline at the opening. A reopen
at night is held the same way. The clock is ``AdapterState.clock``, moved by the test."""

from __future__ import annotations

import threading

import pytest
import requests
from werkzeug.serving import make_server

from adapter.delivery.engine import drain
from adapter.delivery.relay import sweep
from adapter.extensions import db
from adapter.models import Conversation
from adapter.state import state_of
from tests.conftest import make_client
from tests.dialects import weni_contract as contract
from tests.support.mailroom import mailroom
from tests.support.receiver import Receiver
from tests.support.sites import write_site

from .conftest import LONDON_OFFICE, Clock, utc

SECRET_ENV, SECRET = "HOURS_WENI_SECRET", "hours-weni-secret"
TEXT = "Closed now. Back on {weekday} {date} at {time} ({timezone})."


@pytest.fixture(scope="module")
def mailroom_process():
    with mailroom(contract.TOPIC, SECRET) as sandbox:
        yield sandbox


@pytest.fixture
def world(app_factory, tmp_path, monkeypatch, mailroom_process):
    monkeypatch.setenv(SECRET_ENV, SECRET)
    helpline = Receiver()
    folder = tmp_path / "weni-hours"
    write_site(folder, "uk", name="Weni UK", plugin="loopback",
               routing={"locations": ["London"]}, helpline={"url": helpline.url},
               hours=LONDON_OFFICE,
               chatbot={"weni": {"topics": [contract.TOPIC], "after_hours_text": TEXT,
                                 "webhook_secret": "${" + SECRET_ENV + "}"}})
    app = app_factory(folder, RETRY_SCHEDULE=[0.1, 0.2], RETRY_JITTER=0)
    clock = Clock(utc(2026, 3, 27, 18, 0))  # Friday 18:00 GMT: closed until Monday 08:00 BST
    state_of(app).clock = clock
    key = make_client(app, name="weni-workspace")
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    mailroom = mailroom_process.client
    mailroom.reset()
    mailroom.configure(base_url=f"http://127.0.0.1:{server.port}", api_token=key,
                       webhook_secret=SECRET)
    yield app, mailroom_process, helpline, clock
    server.shutdown()
    helpline.stop()


def platform(mailroom, path: str, body: dict | None = None) -> dict:
    answer = requests.post(f"{mailroom.url}/_sandbox/{path}", json=body or {}, timeout=30)
    return answer.json()


def deliver(app) -> None:
    with app.app_context():
        sweep(app)
        drain(app)


def test_a_ticket_after_hours_hears_the_opening_and_is_held_until_it(world):
    app, mailroom, helpline, clock = world
    opened = platform(mailroom, "tickets/open", {
        "contact": {"urns": ["whatsapp:447700900456"]}, "body": "help"})
    assert opened["ok"], opened
    deliver(app)

    [notice] = mailroom.client.records("messages")
    assert notice["sender"]["type"] == "system"
    assert notice["text"] == "Closed now. Back on Monday 2026-03-30 at 08:00 (Europe/London)."
    assert [t["status"] for t in mailroom.client.records("tickets")] == ["open"]
    assert helpline.received == []

    clock.at = utc(2026, 3, 30, 7, 0, 1)
    deliver(app)
    assert [call["json"]["action"] for call in helpline.received][:2] == ["open", "message"]


def test_a_reopen_at_night_is_held_too(world):
    app, mailroom, helpline, clock = world
    clock.at = utc(2026, 3, 27, 16, 0)  # Friday 16:00 GMT: open
    opened = platform(mailroom, "tickets/open", {
        "contact": {"urns": ["whatsapp:447700900457"]}, "body": "help"})
    ticket, external_id = opened["ticket_uuid"], opened["external_id"]
    deliver(app)
    platform(mailroom, f"tickets/{ticket}/close")
    deliver(app)
    before = len(helpline.received)

    clock.at = utc(2026, 3, 27, 19, 0)  # closed now
    again = platform(mailroom, f"tickets/{ticket}/reopen")
    assert (again.get("calls") or [{}])[-1].get("status") == 200, again
    deliver(app)
    with app.app_context():
        row = db.session.get(Conversation, external_id)
        assert (row.state, row.held_since is not None) == ("requested", True)
    assert len(helpline.received) == before  # the reopen's open waits for Monday
    assert mailroom.client.records("messages")[-1]["text"].startswith("Closed now. Back on "
                                                                      "Monday")


def test_a_ticket_closed_while_held_then_reopened_by_day_is_an_ordinary_conversation(world):
    app, mailroom, helpline, clock = world
    opened = platform(mailroom, "tickets/open", {
        "contact": {"urns": ["whatsapp:447700900458"]}, "body": "help"})
    ticket, external_id = opened["ticket_uuid"], opened["external_id"]
    deliver(app)
    platform(mailroom, f"tickets/{ticket}/close")  # the child gave up in the night
    deliver(app)
    assert helpline.received == []

    clock.at = utc(2026, 3, 30, 9, 0)  # Monday 10:00 BST: open
    deliver(app)
    assert helpline.received == []  # what waited for the opening was dropped at the close
    again = platform(mailroom, f"tickets/{ticket}/reopen")
    assert (again.get("calls") or [{}])[-1].get("status") == 200, again
    deliver(app)
    with app.app_context():
        row = db.session.get(Conversation, external_id)
        assert (row.state, row.held_since) == ("waiting", None)
    platform(mailroom, f"tickets/{ticket}/close")
    deliver(app)
    assert [call["json"]["action"] for call in helpline.received] == ["open", "close"]
