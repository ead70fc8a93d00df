"""A country plugin overriding one site of a built-in kind, through the override hooks:
``helpline_client`` (one step of the client), ``validate_site`` (a rule across keys),
``helpline_events_from_callback`` (its own reading of the callbacks). Other sites of
the same kind are left as they are."""

from __future__ import annotations

import json

import pytest

from adapter import create_app
from adapter.delivery.engine import drain
from adapter.extensions import db
from adapter.models import Direction, Message
from adapter.sites import SiteConfigError
from tests.conftest import make_client
from tests.support import loopback_plugin, override_plugin
from tests.support.receiver import Receiver
from tests.support.sites import write_site


@pytest.fixture
def receiver():
    peer = Receiver()
    yield peer
    peer.server.shutdown()


def test_an_override_takes_over_one_step_for_its_site_only(app_factory, tmp_path, receiver):
    folder = tmp_path / "countries-override"
    for code, town in (("lb", "Nairobi"), ("ov", "Overland")):
        write_site(folder, code, name=code, plugin="loopback", routing={"locations": [town]},
                   helpline={"url": receiver.url})
    app = app_factory(countries=folder, plugins=(loopback_plugin, override_plugin))
    client = app.test_client()
    auth = {"Authorization": f"Token {make_client(app)}"}
    for town in ("Nairobi", "Overland"):
        assert client.post("/v1/conversations", headers=auth, json={
            "location": town, "contact": {"uuid": f"c-{town}"},
            "text": "hello"}).status_code == 201

    with app.app_context():
        assert drain(app).done == 4

    sent = [json.loads(item["body"]) for item in receiver.received]
    opens = sorted((body.get("by") or "", body["action"])
                   for body in sent if body["action"] == "open")
    assert opens == [("", "open"), ("country plugin", "open")]
    # The steps it did not override are the kind's own, at both sites.
    assert sorted(body["text"] for body in sent if body["action"] == "message") == [
        "hello", "hello"]


def test_an_override_rule_fails_start_up_naming_file_and_key(tmp_path):
    path = write_site(tmp_path, "ov", name="Overland", plugin="loopback",
                      policies={"assignment_timeout": 7200}, helpline={"url": "http://h/"})
    with pytest.raises(SiteConfigError) as error:
        create_app({"COUNTRIES_DIR": str(tmp_path), "SQLALCHEMY_DATABASE_URI": "sqlite://",
                    "SECRET_KEY": "x"}, plugins=(loopback_plugin, override_plugin))
    assert str(path) in str(error.value)
    assert "policies.assignment_timeout" in str(error.value)


def test_an_override_reads_its_sites_callbacks_its_own_way(app_factory, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_CB_PASSWORD", "cb-secret")
    folder = tmp_path / "countries-override"
    write_site(folder, "ov", name="Overland", plugin="openchs",
               routing={"locations": ["Overland"]},
               helpline={"base_url": "http://127.0.0.1:9/api/", "username": "u",
                         "password": "p", "callback_username": "cb",
                         "callback_password": "${TEST_CB_PASSWORD}"})
    app = app_factory(countries=folder, plugins=(override_plugin,))
    client = app.test_client()
    started = client.post("/v1/conversations",
                          headers={"Authorization": f"Token {make_client(app)}"},
                          json={"location": "Overland", "contact": {"uuid": "c-1"}}).json
    token = client.post("/v1/sites/ov/openchs/token/",
                        json={"username": "cb", "password": "cb-secret"}).json["token"]

    reply = client.post("/v1/sites/ov/openchs/message/",
                        headers={"Authorization": f"Token {token}"},
                        json={"session_id": started["id"], "content": "  I am here  ",
                              "message_id": "h-1"})

    assert reply.status_code == 201, reply.json
    with app.app_context():
        message = db.session.execute(db.select(Message).where(
            Message.direction == Direction.TO_CLIENT)).scalar_one()
        assert (message.text, message.sender) == ("I am here", "country-desk")
