"""A countries folder whose sites serve Weni tickets (``[chatbot.weni]``)."""

from __future__ import annotations

import pytest

from tests.conftest import make_client
from tests.support.sites import write_site

from . import weni_contract as contract

SECRET_ENV = "TEST_WENI_WEBHOOK_SECRET"
SECRET = "test-weni-webhook-secret"
OTHER_TOPIC = "b2e3c9d4-0f5a-4b6c-9d7e-8f9a0b1c2d3e"
NO_REOPEN_TOPIC = "c3f4d0e5-1a6b-4c7d-8e8f-9a0b1c2d3e4f"


@pytest.fixture
def weni_countries(tmp_path, monkeypatch):
    monkeypatch.setenv(SECRET_ENV, SECRET)
    folder = tmp_path / "weni-countries"
    write_site(folder, "ke", name="Kenya", plugin="loopback",
               routing={"locations": ["Nairobi"], "urn_prefixes": ["tel:+254", "whatsapp:254"]},
               helpline={"url": "http://127.0.0.1:9/helpline"},
               chatbot={"weni": {"topics": [contract.TOPIC], "queues": [contract.QUEUE],
                                 "webhook_secret": "${" + SECRET_ENV + "}",
                                 "assigned_text": "A counsellor is here."}})
    write_site(folder, "ug", name="Uganda", plugin="loopback",
               routing={"locations": ["Kampala"], "urn_prefixes": ["tel:+256"]},
               helpline={"url": "http://127.0.0.1:9/helpline-ug"},
               chatbot={"weni": {"topics": [OTHER_TOPIC],
                                 "webhook_secret": "${" + SECRET_ENV + "}"}})
    write_site(folder, "tz", name="Tanzania", plugin="loopback",
               routing={"locations": ["Dodoma"]},
               helpline={"url": "http://127.0.0.1:9/helpline-tz"},
               chatbot={"weni": {"topics": [NO_REOPEN_TOPIC], "reopen": False,
                                 "webhook_secret": "${" + SECRET_ENV + "}"}},
               attachments={"allowed_types": ["image/*"]})
    write_site(folder, "rw", name="No Weni here", plugin="loopback",
               routing={"locations": ["Kigali"], "urn_prefixes": ["tel:+250"]},
               helpline={"url": "http://127.0.0.1:9/helpline-rw"})
    return folder


@pytest.fixture
def weni_app(app_factory, weni_countries):
    return app_factory(weni_countries)


@pytest.fixture
def weni(weni_app):
    """A test client and the headers mailroom sends (the contract's §2.1, our key)."""
    key = make_client(weni_app, name="weni-workspace")
    headers = {"Authorization": f"Bearer {key}", "X-API-Version": "1",
               "X-Request-Id": contract.OPEN_HEADERS["X-Request-Id"]}
    return weni_app.test_client(), headers
