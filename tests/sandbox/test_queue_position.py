"""Nobody waits in silence, and knows where they stand: each ``still_waiting`` event
carries the child's place in the helpline's hunting queue when the site's helpline tells
it (OpenCHS: ``helpline.hunting_url``), asked of the sandbox helpline over HTTP just
before the event; null without a hunting URL, or when the endpoint is down or slow, and
the event goes all the same. Time is moved by writing the conversation's clock fields."""

from __future__ import annotations

import time
from datetime import timedelta
from urllib.parse import parse_qs

import pytest
from sqlalchemy import update

from adapter.delivery.engine import drain
from adapter.delivery.relay import check_waiting_updates
from adapter.extensions import db
from adapter.models import Conversation
from adapter.sandbox.process import free_port
from plugins.openchs import client as openchs_client
from tests.conftest import make_client
from tests.sandbox.conftest import FLOW
from tests.support.sites import write_site

CONTACTS = ["0c1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5" + str(n) for n in range(4)]


@pytest.fixture
def hunting_helpline(helpline):
    """The sandbox helpline hunting for counsellors who let every offer time out (slowly):
    each chat stays in the queue in the order it arrived."""
    helpline.client.configure(hunting=True, auto_answer=0.0, offer_timeout=120)
    openchs_client.tokens.clear()
    yield helpline
    openchs_client.tokens.clear()


def _world(app_factory, tmp_path, rapidpro, helpline, hunting_url, **config):
    base = f"{helpline.url}/helpline/api/"
    helpline_table = {"base_url": base, "username": "sandbox", "password": "sandbox-password"}
    if hunting_url is not None:
        helpline_table["hunting_url"] = hunting_url.format(base=base)
    write_site(tmp_path, "qp", name="Queue position", plugin="openchs",
               routing={"locations": ["Queueland"]}, helpline=helpline_table,
               policies={"still_waiting_every": 60},
               rapidpro={"base_url": rapidpro.url, "token": "tok-weni",
                         # not what is tested: no pacing wait between the events
                         "rate_per_hour": 1_000_000, "flows": {"still_waiting": FLOW}})
    return app_factory(countries=tmp_path, plugins=(), **config)


def _start(app, key, n: int) -> str:
    """A child escalated with a first message, delivered: the helpline starts hunting."""
    started = app.test_client().post(
        "/v1/conversations", headers={"Authorization": f"Token {key}"},
        json={"location": "Queueland", "conversation_id": f"queue-{n}",
              "contact": {"uuid": CONTACTS[n]}, "text": "please help"})
    assert started.status_code == 201, started.json
    with app.app_context():
        drain(app)  # one at a time: the helpline's queue in this order
    return started.json["id"]


def _age_all(app, seconds: float) -> None:
    """As if every conversation (and its last update) began ``seconds`` earlier."""
    back = timedelta(seconds=seconds)
    with app.app_context():
        for row in db.session.execute(db.select(Conversation)).scalars().all():
            db.session.execute(update(Conversation).where(Conversation.id == row.id).values(
                waiting_since=row.waiting_since - back,
                still_waiting_at=row.still_waiting_at - back if row.still_waiting_at else None))
        db.session.commit()


def _told(rapidpro) -> dict[str, list]:
    """Each conversation's still_waiting queue positions, in the order RapidPro got them."""
    told: dict[str, list] = {}
    for start in rapidpro.client.records("flow_starts"):
        params = start["body"]["params"]
        assert params["event"] == "still_waiting"
        told.setdefault(params["session_id"], []).append(params["queue_position"])
    return told


def _hunting_asks(helpline) -> list[dict]:
    return [r for r in helpline.client.records("requests") if "hunting" in r["path"]]


def test_each_waiting_child_hears_their_place_in_the_queue(app_factory, tmp_path, rapidpro,
                                                            hunting_helpline):
    app = _world(app_factory, tmp_path, rapidpro, hunting_helpline, "{base}hunting/")
    key = make_client(app, "queue")
    first, second, third = (_start(app, key, n) for n in range(3))
    assert [s["state"] for s in hunting_helpline.client.sessions()] == ["hunting"] * 3

    _age_all(app, 65)
    with app.app_context():
        assert check_waiting_updates(app) == 3
        drain(app)
    assert _told(rapidpro) == {first: [1], second: [2], third: [3]}

    # The first is taken at the helpline (its assign callback is not what this test is
    # about): it is no longer in the queue, and the others move up.
    hunting_helpline.client.counsellor("assign", session_id=first)
    _age_all(app, 65)
    with app.app_context():
        assert check_waiting_updates(app) == 3
        drain(app)
    assert _told(rapidpro) == {first: [1, None], second: [2, 1], third: [3, 2]}
    # asked as the sandbox's hunting daemon expects: our session id, with the session token
    asks = _hunting_asks(hunting_helpline)
    assert len(asks) == 6 and {a["status"] for a in asks} == {200}
    assert {parse_qs(a["query"])["session_id"][0] for a in asks} == {first, second, third}
    assert all(a["headers"]["Authorization"].startswith("Bearer ") for a in asks)


def test_without_a_hunting_url_the_position_is_null_and_nothing_is_asked(
        app_factory, tmp_path, rapidpro, hunting_helpline):
    app = _world(app_factory, tmp_path, rapidpro, hunting_helpline, None)
    cid = _start(app, make_client(app, "queue"), 0)
    _age_all(app, 65)
    with app.app_context():
        assert check_waiting_updates(app) == 1
        drain(app)
    assert _told(rapidpro) == {cid: [None]}
    assert _hunting_asks(hunting_helpline) == []


def test_a_hunting_endpoint_that_is_down_gives_null_and_the_event_goes(
        app_factory, tmp_path, rapidpro, hunting_helpline):
    nothing_there = f"http://127.0.0.1:{free_port()}/hunting/"
    app = _world(app_factory, tmp_path, rapidpro, hunting_helpline, nothing_there)
    cid = _start(app, make_client(app, "queue"), 0)
    _age_all(app, 65)
    with app.app_context():
        assert check_waiting_updates(app) == 1
        drain(app)
    assert _told(rapidpro) == {cid: [None]}


def test_a_slow_hunting_endpoint_gives_null_without_holding_the_event(
        app_factory, tmp_path, rapidpro, hunting_helpline):
    app = _world(app_factory, tmp_path, rapidpro, hunting_helpline, "{base}hunting/",
                 QUEUE_POSITION_TIMEOUT_SECONDS=0.5)
    key = make_client(app, "queue")
    ids = [_start(app, key, n) for n in range(3)]
    hunting_helpline.client.set_faults(slow_hunting=3)
    _age_all(app, 65)
    with app.app_context():
        began = time.monotonic()
        assert check_waiting_updates(app) == 3
        took = time.monotonic() - began
        drain(app)
    # three slow answers asked at once, none waited for beyond the deadline
    assert took < 2.0, took
    assert _told(rapidpro) == {cid: [None] for cid in ids}
