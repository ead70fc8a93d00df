"""A child who writes again soon after a close comes back to the same conversation
(``[policies] reopen_within``), over real HTTP against the sandbox OpenCHS helpline: the
same helpline session, the counsellor told it is a return. Outside the window, or at a
site without one, writing again is refused or starts afresh, as before. Time is moved
by writing the conversation's ``closed_at``, never by sleeping."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from adapter.delivery.engine import drain
from adapter.extensions import db
from adapter.models import Conversation, utcnow
from tests.conftest import make_client
from tests.support import loopback_plugin
from tests.support.receiver import receiving
from tests.support.sites import write_site

from .conftest import openchs_site, served_world

CONTACT = {"uuid": "5b0c7a1e-2f3d-4e5f-8a9b-0c1d2e3f4a5b", "urn": "tel:+254700000042"}


@pytest.fixture
def world(app_factory, helpline, tmp_path, openchs_env, serve):
    def make(reopen_within: int = 1800):
        folder = tmp_path / f"countries-{reopen_within}"
        path = openchs_site(folder, "ke", helpline.api_url)
        path.write_text(path.read_text() + f"\n[policies]\nreopen_within = {reopen_within}\n")
        return served_world(app_factory, helpline, serve, folder)

    return make


def deliver(app) -> None:
    with app.app_context():
        result = drain(app)
        assert result.failed == 0 and result.unexpected is None


def closed_ago(app, conversation_id: str, seconds: float) -> None:
    with app.app_context():
        db.session.execute(update(Conversation).where(Conversation.id == conversation_id)
                           .values(closed_at=utcnow() - timedelta(seconds=seconds)))
        db.session.commit()


def start(client, auth, text="I need help", **extra):
    return client.post("/v1/conversations", headers=auth, json={
        "site": "ke", "contact": CONTACT, "text": text, **extra})


def test_writing_again_within_the_window_reopens_the_same_helpline_session(world):
    app, client, auth, sandbox = world()
    first = start(client, auth, conversation_id="run-1")
    assert first.status_code == 201
    session_id = first.json["id"]
    deliver(app)
    assert sandbox.counsellor("reply", session_id=session_id, text="I am here",
                              counsellor="Amani")["ok"]
    assert sandbox.counsellor("close", session_id=session_id)["ok"]
    closed_ago(app, session_id, 600)

    again = client.post("/v1/conversations/run-1/messages", headers=auth,
                        json={"text": "I am scared again", "message_id": "m-2"})

    assert again.status_code == 202, again.json
    assert again.json["conversation_id"] == "run-1"
    shown = client.get("/v1/conversations/run-1", headers=auth).json
    assert shown["id"] == session_id and shown["state"] == "requested"
    assert shown["reopen_count"] == 1 and shown["closed_by"] is None
    assert shown["previous_id"] is None
    deliver(app)
    texts = [(m["session_id"], m["message"]) for m in sandbox.records("messages")]
    # The same session at the helpline: a return notice, then the child's new words.
    assert texts[-2:] == [(session_id, "[the child has come back to this conversation]"),
                          (session_id, "I am scared again")]
    return_notice = sandbox.records("messages")[-2]
    assert return_notice["message_id"] == f"{session_id}/return/1"
    # The counsellor can answer in the same session; the conversation is active again.
    assert sandbox.counsellor("reply", session_id=session_id, text="Welcome back",
                              counsellor="Amani")["ok"]
    assert client.get("/v1/conversations/run-1", headers=auth).json["state"] == "active"


def test_an_escalation_of_the_same_contact_within_the_window_is_a_return(world):
    app, client, auth, sandbox = world()
    first = start(client, auth).json
    deliver(app)
    assert client.post(f"/v1/conversations/{first['id']}/close", headers=auth,
                       json={}).status_code == 200
    deliver(app)

    again = start(client, auth, text="me again")

    assert again.status_code == 201
    assert again.json["id"] == first["id"] and again.json["reopen_count"] == 1
    deliver(app)
    assert [m["message"] for m in sandbox.records("messages")][-2:] == [
        "[the child has come back to this conversation]", "me again"]


def test_outside_the_window_a_message_is_refused_and_an_escalation_starts_afresh(world):
    app, client, auth, sandbox = world(reopen_within=600)
    first = start(client, auth, conversation_id="run-2").json
    deliver(app)
    assert sandbox.counsellor("close", session_id=first["id"])["ok"]
    closed_ago(app, first["id"], 601)

    refused = client.post("/v1/conversations/run-2/messages", headers=auth,
                          json={"text": "hello?"})
    fresh = start(client, auth, text="hello again")

    assert refused.status_code == 409 and refused.json["code"] == "conversation_closed"
    assert fresh.status_code == 201 and fresh.json["id"] != first["id"]
    assert fresh.json["reopen_count"] == 0


def test_a_site_without_a_window_never_reopens(world):
    app, client, auth, sandbox = world(reopen_within=0)
    first = start(client, auth, conversation_id="run-3").json
    deliver(app)
    assert sandbox.counsellor("close", session_id=first["id"])["ok"]

    refused = client.post("/v1/conversations/run-3/messages", headers=auth,
                          json={"text": "hello?"})

    assert refused.status_code == 409


def test_a_repeated_message_after_a_return_is_stored_once(world):
    app, client, auth, sandbox = world()
    start(client, auth, conversation_id="run-4")
    deliver(app)
    assert client.post("/v1/conversations/run-4/close", headers=auth, json={}).status_code == 200
    body = {"text": "back", "message_id": "m-back"}

    first = client.post("/v1/conversations/run-4/messages", headers=auth, json=body)
    repeat = client.post("/v1/conversations/run-4/messages", headers=auth, json=body)

    assert (first.status_code, repeat.status_code) == (202, 200)
    assert repeat.json["message_id"] == first.json["message_id"]
    shown = client.get("/v1/conversations/run-4", headers=auth).json
    assert shown["reopen_count"] == 1


def test_a_helpline_that_cannot_reopen_gets_a_new_session_linked_to_the_old(
        app_factory, tmp_path):
    """The loopback kind does not say "reopen": the return is a new conversation that
    takes over the chatbot's id and names the one before it; the helpline is told."""
    with receiving() as helpline:
        write_site(tmp_path, "lb", name="Loopback", plugin="loopback",
                   routing={"locations": ["Nairobi"]}, helpline={"url": helpline.url},
                   policies={"reopen_within": 900})
        app = app_factory(countries=tmp_path, plugins=(loopback_plugin,))
        client = app.test_client()
        auth = {"Authorization": f"Token {make_client(app)}"}
        first = client.post("/v1/conversations", headers=auth, json={
            "location": "Nairobi", "conversation_id": "run-5", "contact": CONTACT}).json
        assert client.post("/v1/conversations/run-5/close", headers=auth,
                           json={}).status_code == 200
        deliver(app)

        again = client.post("/v1/conversations/run-5/messages", headers=auth,
                            json={"text": "back again"})
        deliver(app)

    assert again.status_code == 202
    shown = client.get("/v1/conversations/run-5", headers=auth).json
    assert shown["id"] != first["id"] and shown["previous_id"] == first["id"]
    assert shown["reopen_count"] == 1 and shown["state"] in ("requested", "waiting")
    old = client.get(f"/v1/conversations/{first['id']}", headers=auth).json
    assert old["state"] == "closed" and old["conversation_id"] == f"run-5~{first['id']}"
    opens = [r["json"] for r in helpline.received if r["json"]["action"] == "open"]
    assert [o["session_id"] for o in opens] == [first["id"], shown["id"]]
    assert opens[-1]["previous_session_id"] == first["id"]
