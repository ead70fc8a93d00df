"""Nobody waits in silence: while a conversation waits for a counsellor, a site that asks
for it sends the chatbot ``still_waiting`` every N seconds with the wait so far; off by
default. Time is moved by writing the conversation's clock fields, never by sleeping."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from adapter.delivery.engine import drain
from adapter.delivery.relay import check_waiting_updates
from adapter.extensions import db
from adapter.models import Conversation, utcnow
from tests.conftest import make_client
from tests.sandbox.conftest import FLOW
from tests.support import loopback_plugin
from tests.support.receiver import receiving
from tests.support.sites import write_site


def _world(app_factory, tmp_path, rapidpro, helpline_url, name="wait-1", **policies):
    write_site(tmp_path, "sw", name="Still waiting", plugin="loopback",
               routing={"locations": ["Waitland"]}, helpline={"url": helpline_url},
               policies=policies,
               rapidpro={"base_url": rapidpro.url, "token": "tok-weni",
                         "flows": {"still_waiting": FLOW}})
    app = app_factory(countries=tmp_path, plugins=(loopback_plugin,))
    started = app.test_client().post(
        "/v1/conversations", headers={"Authorization": f"Token {make_client(app, name)}"},
        json={"location": "Waitland", "conversation_id": name,
              "contact": {"uuid": "0c1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f"}})
    assert started.status_code == 201
    return app, started.json["id"]


def _age(app, conversation_id: str, seconds: float) -> None:
    """As if the conversation (and its last update) began ``seconds`` earlier."""
    with app.app_context():
        row = db.session.get(Conversation, conversation_id)
        back = timedelta(seconds=seconds)
        db.session.execute(update(Conversation).where(Conversation.id == conversation_id)
                           .values(waiting_since=row.waiting_since - back,
                                   still_waiting_at=(row.still_waiting_at - back)
                                   if row.still_waiting_at else None))
        db.session.commit()


def test_a_waiting_child_hears_still_waiting_once_per_period(app_factory, tmp_path, rapidpro):
    with receiving() as helpline:
        app, cid = _world(app_factory, tmp_path, rapidpro, helpline.url,
                          still_waiting_every=120)
        with app.app_context():
            drain(app)  # opened at the helpline: waiting, hunting
            assert check_waiting_updates(app) == 0  # not two minutes yet
        _age(app, cid, 130)
        with app.app_context():
            assert check_waiting_updates(app) == 1
            assert check_waiting_updates(app) == 0  # once per period
            drain(app)
        _age(app, cid, 125)
        with app.app_context():
            assert check_waiting_updates(app) == 1
            drain(app)

    starts = [r["body"] for r in rapidpro.client.records("flow_starts")]
    assert [s["params"]["event"] for s in starts] == ["still_waiting", "still_waiting"]
    first, second = (s["params"] for s in starts)
    assert first["conversation_id"] == "wait-1" and first["session_id"] == cid
    assert 130 <= first["waited_seconds"] < 140 and 255 <= second["waited_seconds"] < 265
    assert first["queue_position"] is None


def test_still_waiting_is_off_by_default_and_stops_once_assigned(app_factory, tmp_path,
                                                                  rapidpro):
    with receiving() as helpline:
        app, cid = _world(app_factory, tmp_path, rapidpro, helpline.url)
        _age(app, cid, 3600)
        with app.app_context():
            assert check_waiting_updates(app) == 0
        other = tmp_path / "other"
        app, cid = _world(app_factory, other, rapidpro, helpline.url, name="wait-2",
                          still_waiting_every=60)
        with app.app_context():
            db.session.execute(update(Conversation)  # both taken by a counsellor
                               .values(state="active", waiting_since=utcnow() - timedelta(
                                   seconds=600)))
            db.session.commit()
            assert check_waiting_updates(app) == 0
