"""What each built-in plugin makes of a case: OpenCHS step bodies from the site's own
category ids, and the webhook plugin's one signed request."""

from __future__ import annotations

import json
from datetime import datetime
from types import SimpleNamespace

import pytest
from standardwebhooks.webhooks import Webhook

from adapter.delivery.engine import drain
from adapter.extensions import db
from adapter.models import Case
from adapter.views import case_view
from plugins.api import CaseView
from plugins.openchs.cases import bodies, phone_number
from plugins.openchs.config import OpenCHSConfig
from plugins.openchs.kind import OPENCHS
from tests.conftest import make_client
from tests.plugins.test_webhook import SECRET
from tests.support.receiver import receiving
from tests.support.sites import write_site

CASE_IDS = {"default_category": "900", "priority": 3,
            "sex": {"Female": "121", "male": "120"},
            "location": {"kisumu": "77"},
            "category": {"abuse": "901", "neglect": "902"}}


def helpline(**case_settings) -> dict:
    return OpenCHSConfig().load({"base_url": "http://h/api/", "username": "u", "password": "p",
                                 "case": {**CASE_IDS, **case_settings}})


def case(**intake) -> CaseView:
    """A case as the core gives it to the plugin: the URN only where phones are shared
    (the kind declares it from ``share_phone``, and the core fills it accordingly)."""
    return CaseView(id="c-1", conversation_id=None, client="client-abc", intake=intake,
                    urn="whatsapp:254722000111", created_at=datetime(2024, 5, 1))


def view_for(helpline_table, case_row) -> CaseView:
    """What the core makes of a stored case for a site with this ``[helpline]`` table."""
    site = SimpleNamespace(helpline=helpline_table)
    return case_view(OPENCHS, site, case_row)


def test_intake_values_become_the_site_category_ids():
    made = bodies(helpline(), case(sex="female", location="Kisumu", category="Neglect",
                                   age=12), {"reporter": "5", "case": "6"})
    assert made["client"]["contact_sex_id"] == "121"
    assert made["client"]["contact_location_id"] == "77"
    assert made["case"]["case_category_id"] == "902"
    assert made["case"]["priority"] == 3 and made["case"]["reporter_id"] == "5"
    assert made["client"]["case_id"] == "6" and made["client"]["contact_age"] == 12


def test_an_unknown_category_falls_back_to_the_site_default():
    made = bodies(helpline(), case(category="something new"), {})
    assert made["case"]["case_category_id"] == "900"
    assert made["client"]["contact_sex_id"] is None


def test_no_phone_number_unless_the_site_opts_in():
    stored = Case(id="c-1", site="ke", client_pseudonym="client-abc", intake={},
                  contact_urn="whatsapp:254722000111", created_at=datetime(2024, 5, 1))
    closed = bodies(helpline(), view_for(helpline(), stored), {})
    assert closed["reporter"]["contact_phone"] == closed["client"]["contact_phone"] == ""
    shared = bodies(helpline(share_phone=True), view_for(helpline(share_phone=True), stored), {})
    assert shared["reporter"]["contact_phone"] == "+254722000111"
    assert shared["client"]["contact_phone"] == "+254722000111"


def test_a_client_who_is_not_the_reporter_is_said_so():
    made = bodies(helpline(share_phone=True), case(is_reporter=False, sex="male"), {})
    assert made["client"]["is_reporter"] == 0
    assert made["reporter"]["contact_sex_id"] is None
    assert made["reporter"]["contact_phone"] == ""  # the number is the child's, not theirs


@pytest.mark.parametrize(("urn", "number"), [
    ("tel:+254700000001", "+254700000001"), ("whatsapp:254700000001", "+254700000001"),
    ("telegram:12345", ""), (None, "")])
def test_only_phone_urns_carry_a_number(urn, number):
    assert phone_number(urn) == number


@pytest.fixture
def receiver():
    with receiving(lambda count: ({"reference": f"ref-{count}"}, 200)) as peer:
        yield peer


def test_the_webhook_plugin_creates_a_case_as_one_signed_request(app_factory, tmp_path,
                                                                 receiver, monkeypatch):
    monkeypatch.setenv("TEST_WEBHOOK_SECRET", SECRET)
    folder = tmp_path / "countries-webhook"
    write_site(folder, "wh", name="Webhook helpline", plugin="webhook",
               routing={"locations": ["Webland"]},
               helpline={"url": receiver.url, "secret": "${TEST_WEBHOOK_SECRET}"})
    app = app_factory(countries=folder)
    auth = {"Authorization": f"Token {make_client(app)}"}
    answer = app.test_client().post("/v1/cases", headers=auth, json={
        "location": "Webland", "contact": {"uuid": "c-7", "urn": "tel:+254700000007"},
        "intake": {"category": "abuse", "age": 11}}).json

    with app.app_context():
        drain(app)
        stored = db.session.get(Case, answer["case_id"])
        assert (stored.status, stored.helpline_reference) == ("created", "ref-1"), \
            stored.failure_reason

    [sent] = receiver.received
    Webhook(SECRET).verify(sent["body"], sent["headers"])  # raises if not signed
    assert sent["headers"]["Webhook-Id"] == f"case_{answer['case_id']}"
    event = json.loads(sent["body"])
    assert event["type"] == "case.created"
    assert event["data"]["intake"] == {"category": "abuse", "age": 11}
    assert event["data"]["client"] == answer["client"]
    assert "+254700000007" not in sent["body"]
