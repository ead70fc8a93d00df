"""An escalation outside the site's opening hours, end to end in-process: the chatbot
side through the API, the helpline and RapidPro as real sandbox processes over HTTP, and
the clock (``AdapterState.clock``) frozen and moved by the test across the boundaries.

Held (``outside = "hold"``): accepted and durable, the chatbot hears ``after_hours`` at
once with the next opening, nothing reaches the helpline before it, then the open and
the child's messages go in order. Closed (``outside = "close"``): closed at once, nothing
at the helpline. The schedule in force when the worker or relay looks decides."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from adapter import create_app
from adapter.delivery.engine import drain
from adapter.delivery.relay import check_assignment_timeouts, check_waiting_updates, sweep
from adapter.extensions import db
from adapter.models import AuditEvent, Conversation, Delivery
from adapter.state import state_of
from tests.conftest import make_client

from .conftest import FLOWS, LONDON_OFFICE, OPENING_NOTICE, Clock, hours_site, utc

CONTACT = {"uuid": "3c1f7a2e-5b4d-4e6f-9a8b-7c6d5e4f3a2b", "urn": "tel:+447700900123"}
#: Friday 27 March 2026, 18:00 GMT: closed. The next opening is Monday 30 March 08:00,
#: by then British Summer Time (UTC+1): 07:00 UTC.
FRIDAY_EVENING = utc(2026, 3, 27, 18, 0)
MONDAY_OPENING_UTC = "2026-03-30T07:00:00Z"
MONDAY_OPENING_LOCAL = "2026-03-30T08:00:00+01:00"
MONDAY_JUST_OPEN = utc(2026, 3, 30, 7, 0, 30)


def world(app_factory, tmp_path, helpline, rapidpro, hours, clock, **policies):
    folder = tmp_path / "countries-hours"
    hours_site(folder, helpline, rapidpro, hours, **policies)
    app = app_factory(countries=folder)
    state_of(app).clock = clock
    return app, {"Authorization": f"Token {make_client(app, 'weni-hours')}"}


def start(app, auth, conversation_id: str = "run-1", text: str | None = "help me") -> dict:
    body = {"location": "London", "contact": CONTACT}
    if conversation_id:
        body["conversation_id"] = conversation_id
    if text:
        body.update(text=text, message_id=f"{conversation_id or 'start'}-m0")
    response = app.test_client().post("/v1/conversations", json=body, headers=auth)
    assert response.status_code == 201, response.json
    return response.json


def send(app, auth, conversation_id: str, text: str, message_id: str) -> None:
    response = app.test_client().post(f"/v1/conversations/{conversation_id}/messages",
                                      json={"text": text, "message_id": message_id},
                                      headers=auth)
    assert response.status_code == 202, response.json


def deliver(app) -> None:
    """What the worker and the relay do, once each, against the clock as it stands."""
    with app.app_context():
        sweep(app)
        drain(app)


def arrived(helpline, session_id: str) -> list[str]:
    rows = sorted(helpline.client.records("messages", session_id=session_id),
                  key=lambda m: m["session_seq"])
    return [m["message"] for m in rows]


def events(rapidpro) -> list[dict]:
    return [start["body"] for start in rapidpro.client.records("flow_starts")]


def conversation(app, session_id: str) -> Conversation:
    with app.app_context():
        row = db.session.get(Conversation, session_id)
        db.session.expunge(row)
        return row


def test_a_held_escalation_hears_after_hours_at_once_and_opens_in_order_at_the_opening(
        app_factory, tmp_path, helpline, rapidpro, hours_env):
    clock = Clock(FRIDAY_EVENING)
    app, auth = world(app_factory, tmp_path, helpline, rapidpro,
                      {**LONDON_OFFICE, "outside": "hold"}, clock)
    started = start(app, auth)
    session = started["id"]

    assert started["state"] == "requested"
    assert started["after_hours"] == {"next_opening": MONDAY_OPENING_UTC,
                                      "next_opening_local": MONDAY_OPENING_LOCAL,
                                      "timezone": "Europe/London", "held": True}
    send(app, auth, "run-1", "are you there?", "run-1-m1")
    deliver(app)
    [event] = events(rapidpro)
    assert event["flow"] == FLOWS["after_hours"]
    assert event["params"] == {"event": "after_hours", "conversation_id": "run-1",
                               "session_id": session, "counsellor": None,
                               "next_opening": MONDAY_OPENING_UTC,
                               "next_opening_local": MONDAY_OPENING_LOCAL,
                               "timezone": "Europe/London", "held": True,
                               "language": None}
    assert event["contacts"] == [CONTACT["uuid"]]

    monitor = {"Authorization": f"Token {make_client(app, 'prometheus', role='monitor')}"}
    scrape = app.test_client().get("/metrics", headers=monitor).get_data(as_text=True)
    assert 'helpline_adapter_conversations_held_after_hours{site="uk"} 1.0' in scrape
    for at in (utc(2026, 3, 28, 12), utc(2026, 3, 30, 6, 59, 59)):  # the weekend, 07:59 BST
        clock.at = at
        send(app, auth, "run-1", f"still here {at.isoformat()}", f"run-1-{at.day}")
        deliver(app)
        assert helpline.client.records("requests") == []  # not even a login
        assert conversation(app, session).state == "requested"

    clock.at = MONDAY_JUST_OPEN
    deliver(app)
    assert arrived(helpline, session) == [
        OPENING_NOTICE, "help me", "are you there?", "still here 2026-03-28T12:00:00+00:00",
        "still here 2026-03-30T06:59:59+00:00"]
    opened = conversation(app, session)
    assert (opened.state, opened.held_since) == ("waiting", None)
    assert [e["params"]["event"] for e in events(rapidpro)] == ["after_hours"]  # once
    scrape = app.test_client().get("/metrics", headers=monitor).get_data(as_text=True)
    assert 'helpline_adapter_conversations_held_after_hours{site="uk"} 0.0' in scrape


def test_the_wait_counts_from_the_opening_not_from_the_night(
        app_factory, tmp_path, helpline, rapidpro, hours_env):
    """A child held all night must not hear no_counsellor the moment the site opens,
    nor still_waiting all night: both count from the opening."""
    clock = Clock(FRIDAY_EVENING)
    app, auth = world(app_factory, tmp_path, helpline, rapidpro, LONDON_OFFICE, clock,
                      assignment_timeout=600, still_waiting_every=120)
    session = start(app, auth)["id"]
    deliver(app)
    age(app, session, hours=60)  # as if held since Friday, sixty hours ago
    with app.app_context():
        assert check_assignment_timeouts(app) == 0
        assert check_waiting_updates(app) == 0

    clock.at = MONDAY_JUST_OPEN
    deliver(app)
    assert arrived(helpline, session)[:1] == [OPENING_NOTICE]
    with app.app_context():
        assert check_assignment_timeouts(app) == 0  # the wait began at the opening
        assert check_waiting_updates(app) == 0
    age(app, session, hours=0, seconds=601)  # ten minutes after the opening: now it counts
    with app.app_context():
        assert check_assignment_timeouts(app) == 1
        assert check_waiting_updates(app) == 1
        drain(app)
    assert [e["params"]["event"] for e in events(rapidpro)] == [
        "after_hours", "no_counsellor", "still_waiting"]
    waited = [e["params"] for e in events(rapidpro) if e["params"]["event"] == "still_waiting"]
    assert 601 <= waited[0]["waited_seconds"] < 700  # from the opening, not from Friday


def age(app, session_id: str, hours: float = 0, seconds: float = 0) -> None:
    """As if the conversation had been waiting that much longer (its clock fields)."""
    back = timedelta(hours=hours, seconds=seconds)
    with app.app_context():
        row = db.session.get(Conversation, session_id)
        db.session.execute(update(Conversation).where(Conversation.id == session_id).values(
            created_at=row.created_at - back, waiting_since=row.waiting_since - back))
        db.session.commit()


def test_close_mode_closes_at_once_and_sends_nothing_to_the_helpline(
        app_factory, tmp_path, helpline, rapidpro, hours_env):
    clock = Clock(FRIDAY_EVENING)
    app, auth = world(app_factory, tmp_path, helpline, rapidpro,
                      {**LONDON_OFFICE, "outside": "close"}, clock)
    started = start(app, auth, conversation_id=None)
    session = started["id"]

    assert (started["state"], started["closed_by"]) == ("closed", "after_hours")
    assert started["after_hours"]["held"] is False
    assert started["after_hours"]["next_opening"] == MONDAY_OPENING_UTC
    clock.at = MONDAY_JUST_OPEN  # even once it opens: it stays closed, nothing is sent
    deliver(app)
    [event] = events(rapidpro)
    assert event["params"]["event"] == "after_hours" and event["params"]["held"] is False
    assert event["params"]["session_id"] == session
    assert helpline.client.records("messages") == []
    assert helpline.client.records("requests") == []
    with app.app_context():
        targets = db.session.execute(db.select(Delivery.target)).scalars().all()
        assert targets == ["chatbot"]

    again = start(app, auth, conversation_id=None, text="it's me again")  # open now
    assert again["id"] != session and again["state"] == "requested"
    assert "after_hours" not in again
    deliver(app)
    assert arrived(helpline, again["id"]) == [OPENING_NOTICE, "it's me again"]


def test_a_schedule_change_opens_held_conversations_at_the_new_time(
        app_factory, tmp_path, helpline, rapidpro, hours_env):
    """Held on Friday evening with Monday's opening due; the site restarts with an
    evening shift added (Friday 18:00-22:00): the relay of the new process opens it now.
    And a schedule that moves the opening later (Monday a holiday) holds it longer."""
    clock = Clock(FRIDAY_EVENING + timedelta(minutes=30))
    app, auth = world(app_factory, tmp_path, helpline, rapidpro, LONDON_OFFICE, clock)
    first = start(app, auth, "run-early")["id"]
    deliver(app)
    assert helpline.client.records("messages") == []

    evening = tmp_path / "countries-evening"
    hours_site(evening, helpline, rapidpro,
               {**LONDON_OFFICE, "friday": ["08:00-17:00", "18:00-22:00"]})
    restarted = same_database_app(app, evening, clock)
    deliver(restarted)
    assert arrived(helpline, first) == [OPENING_NOTICE, "help me"]
    with restarted.app_context():
        actions = db.session.execute(db.select(AuditEvent.action).where(
            AuditEvent.conversation_id == first).order_by(AuditEvent.id)).scalars().all()
    assert actions == ["start", "held_after_hours", "opened_after_hours",
                       "delivered_to_helpline"]


def test_a_schedule_change_to_a_later_opening_holds_it_longer(
        app_factory, tmp_path, helpline, rapidpro, hours_env):
    clock = Clock(FRIDAY_EVENING)
    app, auth = world(app_factory, tmp_path, helpline, rapidpro, LONDON_OFFICE, clock)
    session = start(app, auth)["id"]
    deliver(app)

    holiday = tmp_path / "countries-holiday"
    hours_site(holiday, helpline, rapidpro, {**LONDON_OFFICE, "closed": ["2026-03-30"]})
    restarted = same_database_app(app, holiday, clock)
    clock.at = MONDAY_JUST_OPEN  # the old opening: a holiday now
    deliver(restarted)
    assert helpline.client.records("messages") == []
    clock.at = utc(2026, 3, 31, 7, 0, 5)  # Tuesday 08:00:05 BST
    deliver(restarted)
    assert arrived(helpline, session) == [OPENING_NOTICE, "help me"]


def same_database_app(app, countries, clock):
    """Another process on the same database and queue, started with other site files
    (a restart with a new [hours]): nothing is emptied."""
    keys = ("SQLALCHEMY_DATABASE_URI", "REDIS_URL", "DELIVERY_QUEUE", "SECRET_KEY", "TESTING")
    restarted = create_app({**{k: app.config[k] for k in keys},
                            "COUNTRIES_DIR": str(countries)})
    state_of(restarted).clock = clock
    return restarted


def test_messages_to_an_open_conversation_are_never_held(
        app_factory, tmp_path, helpline, rapidpro, hours_env):
    clock = Clock(utc(2026, 3, 27, 16, 59))  # Friday 16:59 GMT: open
    app, auth = world(app_factory, tmp_path, helpline, rapidpro, LONDON_OFFICE, clock)
    session = start(app, auth)["id"]
    deliver(app)
    assert conversation(app, session).state == "waiting"

    clock.at = FRIDAY_EVENING  # the site closes while the child talks
    send(app, auth, "run-1", "one more thing", "run-1-m1")
    deliver(app)
    assert arrived(helpline, session) == [OPENING_NOTICE, "help me", "one more thing"]
    assert events(rapidpro) == []  # no after_hours for a conversation already open


def test_a_held_conversation_the_chatbot_closes_never_reaches_the_helpline(
        app_factory, tmp_path, helpline, rapidpro, hours_env):
    clock = Clock(FRIDAY_EVENING)
    app, auth = world(app_factory, tmp_path, helpline, rapidpro, LONDON_OFFICE, clock)
    session = start(app, auth)["id"]
    closed = app.test_client().post("/v1/conversations/run-1/close", json={}, headers=auth)
    assert closed.status_code in (200, 202), closed.json

    clock.at = MONDAY_JUST_OPEN
    deliver(app)
    assert helpline.client.records("messages") == []
    with app.app_context():
        rows = db.session.execute(db.select(Delivery).where(
            Delivery.conversation_id == session, Delivery.target == "helpline")).scalars().all()
        assert {(d.action, d.status, d.attempts) for d in rows} == {
            ("open", "done", 0), ("message", "done", 0)}
        assert {d.last_error for d in rows} == {"not sent: closed while held after hours"}


def test_a_site_without_hours_is_always_open(app_factory, tmp_path, helpline, rapidpro,
                                              hours_env):
    clock = Clock(utc(2026, 3, 29, 3, 0))  # a Sunday night
    app, auth = world(app_factory, tmp_path, helpline, rapidpro, None, clock)
    started = start(app, auth)
    assert "after_hours" not in started
    deliver(app)
    assert arrived(helpline, started["id"]) == [OPENING_NOTICE, "help me"]


def test_no_opening_ahead_says_so(app_factory, tmp_path, helpline, rapidpro, hours_env):
    clock = Clock(FRIDAY_EVENING)
    app, auth = world(app_factory, tmp_path, helpline, rapidpro,
                      {"timezone": "Europe/London"}, clock)  # no day open at all
    started = start(app, auth)
    assert started["after_hours"] == {"next_opening": None, "next_opening_local": None,
                                      "timezone": "Europe/London", "held": True}
    deliver(app)
    [event] = events(rapidpro)
    assert event["params"]["next_opening"] is None
    assert helpline.client.records("messages") == []


def test_the_after_hours_text_is_in_the_childs_language_with_the_opening_in_it(
        app_factory, tmp_path, helpline, rapidpro, hours_env):
    """[texts.<language>] after_hours, its placeholders filled with the next opening in
    the site's wall time; a language without one falls back to the default's."""
    folder = tmp_path / "countries-hours-texts"
    path = hours_site(folder, helpline, rapidpro, {**LONDON_OFFICE, "outside": "hold"})
    path.write_text(path.read_text() + """
[texts]
default_language = "eng"
[texts.eng]
after_hours = "Closed now: we open on {weekday} at {time} ({timezone}). In danger? Call 116."
[texts.cym]
after_hours = "Ar gau: rydym yn agor ddydd {weekday} am {time}. Mewn perygl? Ffoniwch 116."
""")
    app = app_factory(countries=folder)
    state_of(app).clock = Clock(FRIDAY_EVENING)
    auth = {"Authorization": f"Token {make_client(app, 'weni-texts')}"}
    for run, language, contact in (("run-cym", "cym", "5e1d0c2b-3a4f-4b6e-8d7c-9f0a1b2c3d01"),
                                   ("run-fra", "fra", "5e1d0c2b-3a4f-4b6e-8d7c-9f0a1b2c3d02")):
        response = app.test_client().post("/v1/conversations", headers=auth, json={
            "location": "London", "conversation_id": run, "language": language,
            "contact": {"uuid": contact, "urn": CONTACT["urn"]}})
        assert response.status_code == 201, response.json
    deliver(app)

    told = {e["params"]["conversation_id"]: e["params"] for e in events(rapidpro)}
    assert told["run-cym"]["text"] == ("Ar gau: rydym yn agor ddydd Monday am 08:00. "
                                       "Mewn perygl? Ffoniwch 116.")
    assert told["run-cym"]["text_language"] == "cym"
    assert told["run-fra"]["text"] == ("Closed now: we open on Monday at 08:00 "
                                       "(Europe/London). In danger? Call 116.")
    assert told["run-fra"]["text_language"] == "eng"
