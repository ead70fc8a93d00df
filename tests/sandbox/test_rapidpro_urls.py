"""A site's RapidPro URL in either form reaches RapidPro; a wrong one keeps the child's
messages (a site problem, retried) instead of failing them after one attempt."""

from __future__ import annotations

import pytest

from adapter.delivery.engine import drain
from adapter.extensions import db
from adapter.models import Delivery, DeliveryStatus, Message, MessageStatus
from adapter.sites import RapidProSettings
from tests.conftest import make_client
from tests.core.conftest import counsellor_message
from tests.support import loopback_plugin
from tests.support.sites import write_site


@pytest.mark.parametrize(("given", "root"), [
    ("https://rp.example", "https://rp.example/api/v2"),
    ("https://rp.example/", "https://rp.example/api/v2"),
    ("https://rp.example/api/", "https://rp.example/api/v2"),
    ("https://rp.example/api/v2", "https://rp.example/api/v2"),
    ("https://rp.example/api/v2/", "https://rp.example/api/v2"),
    ("https://host/weni/", "https://host/weni/api/v2"),
])
def test_the_api_root_from_either_form(given, root):
    assert RapidProSettings(base_url=given, token="t").api_root == root


def _world(app_factory, tmp_path, base_url: str):
    folder = tmp_path / "countries-rp"
    write_site(folder, "rp", name="RapidPro URLs", plugin="loopback",
               routing={"locations": ["Rapidland"]},
               helpline={"url": "http://127.0.0.1:9/helpline"},
               rapidpro={"base_url": base_url, "token": "tok-weni"})
    app = app_factory(countries=folder, plugins=(loopback_plugin,))
    started = app.test_client().post(
        "/v1/conversations", headers={"Authorization": f"Token {make_client(app)}"},
        json={"location": "Rapidland", "contact": {"uuid": "5b7b4a0e-8a4c-4f3e-9d55-0c7f2a1d9e01"}})
    assert started.status_code == 201, started.json
    counsellor_message(app, started.json["id"], text="I am here")
    with app.app_context():
        drain(app)
        reply = db.session.execute(db.select(Message)).scalar_one()
        delivery = db.session.execute(db.select(Delivery).where(
            Delivery.target == "chatbot")).scalar_one()
        return reply.status, delivery.status, delivery.last_error


@pytest.mark.parametrize("suffix", ["", "/", "/api/v2/"])
def test_a_counsellor_reply_reaches_rapidpro_whichever_form(app_factory, tmp_path, rapidpro,
                                                            suffix):
    status, delivery, _ = _world(app_factory, tmp_path, rapidpro.url + suffix)

    assert (status, delivery) == (MessageStatus.SENT, DeliveryStatus.DONE)
    [broadcast] = rapidpro.client.records("broadcasts")
    assert broadcast["endpoint"] == "/api/v2/broadcasts.json"


def test_a_wrong_rapidpro_url_keeps_the_reply_for_a_retry(app_factory, tmp_path, rapidpro):
    status, delivery, error = _world(app_factory, tmp_path, rapidpro.url + "/no-such-path/")

    assert status == MessageStatus.ACCEPTED  # not failed: the child will still get it
    assert delivery == DeliveryStatus.PENDING
    assert "a site problem" in error and "404" in error
