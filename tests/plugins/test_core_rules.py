"""What the core does for every kind, so no plugin has to: a site whose secrets are
unset, or whose helpline refuses our credentials, keeps its deliveries (retried later,
never failed); an optional step the kind does not implement is said so."""

from __future__ import annotations

import threading

import pytest
from flask import Flask
from werkzeug.serving import make_server

from adapter.delivery.engine import drain
from adapter.extensions import db
from adapter.models import Conversation, Delivery, DeliveryStatus, Message, MessageStatus
from tests.conftest import make_client
from tests.support import loopback_plugin
from tests.support.sites import write_site


class Refusing:
    """A helpline that refuses every call with ``status`` (a peer, over real HTTP)."""

    def __init__(self, status: int) -> None:
        self.calls = 0
        app = Flask("refusing-helpline")

        @app.post("/in")
        def refuse():
            self.calls += 1
            return {"error": "no"}, status

        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.port}/in"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def _start(app, location: str) -> None:
    response = app.test_client().post(
        "/v1/conversations", headers={"Authorization": f"Token {make_client(app)}"},
        json={"location": location, "contact": {"uuid": "c-1"}, "text": "help"})
    assert response.status_code == 201, response.json


def _outcome(app) -> tuple[list[tuple[str, str | None]], str, str]:
    with app.app_context():
        deliveries = [(d.status, d.last_error) for d in db.session.execute(
            db.select(Delivery).order_by(Delivery.id)).scalars()]
        message = db.session.execute(db.select(Message)).scalar_one()
        conversation = db.session.execute(db.select(Conversation)).scalar_one()
        return deliveries, message.status, conversation.state


def test_a_site_with_an_unset_secret_keeps_its_deliveries(app_factory, tmp_path, monkeypatch):
    monkeypatch.delenv("TEST_UNSET_HELPLINE_URL", raising=False)
    folder = tmp_path / "countries-unset"
    write_site(folder, "un", name="Unset", plugin="loopback", routing={"locations": ["Unset"]},
               helpline={"url": "${TEST_UNSET_HELPLINE_URL}"})
    app = app_factory(countries=folder, plugins=(loopback_plugin,))
    _start(app, "Unset")

    with app.app_context():
        result = drain(app)

    deliveries, message_status, state = _outcome(app)
    assert result.failed == 0
    assert [status for status, _ in deliveries] == [DeliveryStatus.HELD] * 2
    assert "helpline.url" in deliveries[0][1]
    assert message_status == MessageStatus.ACCEPTED and state == "requested"


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials_are_a_site_problem_not_a_bad_message(app_factory, tmp_path,
                                                                  status):
    helpline = Refusing(status)
    try:
        folder = tmp_path / "countries-refusing"
        write_site(folder, "rf", name="Refusing", plugin="loopback",
                   routing={"locations": ["Refusal"]}, helpline={"url": helpline.url})
        app = app_factory(countries=folder, plugins=(loopback_plugin,))
        _start(app, "Refusal")

        with app.app_context():
            result = drain(app)

        deliveries, message_status, _ = _outcome(app)
        assert result.failed == 0 and helpline.calls >= 1
        assert deliveries[0][0] == DeliveryStatus.PENDING
        assert "refused our credentials" in deliveries[0][1]
        assert message_status == MessageStatus.ACCEPTED
    finally:
        helpline.server.shutdown()


def test_an_optional_step_the_kind_lacks_is_not_supported_not_retried(app_factory, tmp_path):
    folder = tmp_path / "countries-nocase"
    write_site(folder, "nc", name="No cases", plugin="loopback",
               routing={"locations": ["Nocase"]}, helpline={"url": "http://127.0.0.1:9/"})
    app = app_factory(countries=folder, plugins=(loopback_plugin,))
    response = app.test_client().post(
        "/v1/cases", headers={"Authorization": f"Token {make_client(app)}"},
        json={"site": "nc", "intake": {"narrative": "x"}})
    assert response.status_code == 202, response.json

    with app.app_context():
        drain(app)
        delivery = db.session.execute(db.select(Delivery)).scalar_one()
    assert delivery.status == DeliveryStatus.FAILED
    assert "does not support create_case" in delivery.last_error
