"""Who may act on a ticket: the isolation rules of every other chatbot route
(docs/security.md), on the five ticket routes. A ticket belongs to the chatbot client
that opened it (its namespace) and to its site; anyone else gets the contract's own
refusals and nothing changes."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from adapter.extensions import db
from adapter.models import Conversation, Delivery, Message
from tests.conftest import make_client

from . import weni_contract as contract
from .test_weni_ticketer_http import open_ticket


def _key(app, name: str, **kwargs) -> dict:
    return {"Authorization": f"Bearer {make_client(app, name, **kwargs)}",
            "X-API-Version": "1"}


def _counts(app) -> tuple[int, int, int]:
    with app.app_context():
        return tuple(db.session.scalar(select(func.count()).select_from(model))
                     for model in (Conversation, Message, Delivery))


ROUTES = {
    "messages": contract.FORWARD_BODY,
    "close": contract.CLOSE_BODY,
    "reopen": contract.REOPEN_BODY,
    "history": contract.HISTORY_BODY,
}
#: caller → the status every route gives it for the owner's ticket.
REFUSED = {
    "stranger_same_site": 404,  # another chatbot: the ticket is not one of its own
    "other_site_key": 403,  # the owner's namespace, but a key limited to another site
    "helpline": 403,  # not a chatbot
    "monitor": 403,
    "anonymous": 401,
}


@pytest.fixture
def callers(weni_app):
    return {
        "owner": _key(weni_app, "weni-workspace"),
        "stranger_same_site": _key(weni_app, "another-bot", sites=["ke"]),
        "other_site_key": _key(weni_app, "weni-ug", sites=["ug"], namespace="weni-workspace"),
        "helpline": _key(weni_app, "openchs-ke", role="helpline", sites=["ke"]),
        "monitor": _key(weni_app, "prometheus", role="monitor"),
        "anonymous": {"X-API-Version": "1"},
    }


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_only_the_opener_acts_on_its_ticket(weni_app, callers, route):
    client = weni_app.test_client()
    opened = open_ticket(client, callers["owner"])
    assert opened.status_code == 201, opened.json
    external = opened.json["external_id"]
    body = contract.body(ROUTES[route], external_id=external)
    for caller, status in REFUSED.items():
        before = _counts(weni_app)
        refused = client.post(f"/v1/tickets/{external}/{route}", json=body,
                              headers=callers[caller])
        assert refused.status_code == status, (caller, refused.json)
        assert set(refused.json) <= {"error", "message", "details"}, refused.json
        assert _counts(weni_app) == before, caller  # a refusal changes nothing
    if route == "reopen":
        client.post(f"/v1/tickets/{external}/close", headers=callers["owner"],
                    json=contract.body(contract.CLOSE_BODY, external_id=external))
    allowed = client.post(f"/v1/tickets/{external}/{route}", json=body,
                          headers=callers["owner"])
    assert 200 <= allowed.status_code < 300, allowed.json


def test_opening_a_ticket_needs_a_chatbot_key(weni_app, callers):
    client = weni_app.test_client()
    for caller in ("helpline", "monitor", "anonymous"):
        refused = open_ticket(client, callers[caller])
        assert refused.status_code == REFUSED[caller], (caller, refused.json)
    # Another chatbot opening the same ticket id gets a conversation of its own.
    mine = open_ticket(client, callers["owner"])
    theirs = open_ticket(client, callers["stranger_same_site"])
    assert mine.status_code == theirs.status_code == 201
    assert mine.json["external_id"] != theirs.json["external_id"]
