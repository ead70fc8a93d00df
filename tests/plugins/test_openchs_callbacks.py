"""A whole conversation with the sandbox helpline over real HTTP, both directions:
our deliveries reach ``msg/``; its counsellor calls back with a token it obtained
from our per-site token endpoint."""

from __future__ import annotations

import pytest

from adapter.delivery.engine import drain
from adapter.extensions import db
from adapter.models import Conversation, Direction, Message
from tests.conftest import make_client

from .conftest import CALLBACK_PASSWORD, CALLBACK_USER, openchs_site


@pytest.fixture
def world(app_factory, helpline, tmp_path, openchs_env, serve):
    """The adapter (site ``ke`` → the sandbox) served on a port the sandbox calls back."""
    folder = tmp_path / "countries-openchs"
    openchs_site(folder, "ke", helpline.api_url)
    app = app_factory(countries=folder)
    served = serve(app)
    helpline.client.configure(callback_url=f"{served.url}/v1/sites/ke/openchs/",
                              callback_username=CALLBACK_USER,
                              callback_password=CALLBACK_PASSWORD, callback_backoff=0.05)
    key = make_client(app)
    return app, app.test_client(), {"Authorization": f"Token {key}"}, helpline.client


def start(client, auth, text="I need help") -> str:
    response = client.post("/v1/conversations", headers=auth, json={
        "site": "ke", "contact": {"uuid": "c-1", "urn": "tel:+254700000001"}, "text": text})
    assert response.status_code == 201, response.json
    return response.json


def deliver(app) -> None:
    with app.app_context():
        result = drain(app)
        assert result.failed == 0 and result.unexpected is None


def ours(app, conversation_id):
    with app.app_context():
        conversation = db.session.get(Conversation, conversation_id)
        messages = db.session.execute(db.select(Message).where(
            Message.conversation_id == conversation_id).order_by(Message.seq)).scalars().all()
        return conversation, [(m.direction, m.text, m.sender, m.status) for m in messages]


def conversation_id(body) -> str:
    return body.get("id") or body["conversation_id"]


def test_client_message_reaches_the_helpline_and_the_counsellor_reply_comes_back(world):
    app, client, auth, sandbox = world
    started = start(client, auth)
    deliver(app)
    [sent] = sandbox.records("messages")
    session_id = sent["session_id"]
    with app.app_context():
        conversation = db.session.execute(db.select(Conversation)).scalar_one()
        assert session_id == conversation.id
        assert sent["from"] == conversation.client_pseudonym
    assert started

    outcome = sandbox.counsellor("reply", session_id=session_id, text="I am here for you",
                                 counsellor="Amani", message_id="hl-1")

    assert outcome["ok"] and outcome["status"] == 201, outcome
    conversation, messages = ours(app, session_id)
    assert conversation.state == "active" and conversation.counsellor == "Amani"
    assert messages[-1][:3] == (Direction.TO_CLIENT, "I am here for you", "Amani")
    # One login for the callbacks, as OpenCHS's code expects.
    logins = [c for c in sandbox.records("callbacks") if c["callback"] == "token"]
    assert len(logins) == 1 and logins[0]["ok"]


def test_a_reply_with_only_a_recipient_is_mapped_by_the_pseudonym(world):
    app, client, auth, sandbox = world
    start(client, auth)
    deliver(app)
    [sent] = sandbox.records("messages")

    outcome = sandbox.counsellor("reply", session_id=sent["session_id"], text="Hello",
                                 minimal=True)

    assert outcome["ok"], outcome
    assert set(outcome["body"]) == {"recipient", "message_type", "content"}
    _, messages = ours(app, sent["session_id"])
    assert messages[-1][:2] == (Direction.TO_CLIENT, "Hello")


def test_a_repeated_reply_is_stored_once(world):
    app, client, auth, sandbox = world
    start(client, auth)
    deliver(app)
    session_id = sandbox.records("messages")[0]["session_id"]
    first = sandbox.counsellor("reply", session_id=session_id, text="Hi", message_id="hl-7")
    again = sandbox.counsellor("reply", session_id=session_id, text="Hi", message_id="hl-7")
    assert (first["status"], again["status"]) == (201, 200)
    assert first["response"]["message_id"] == again["response"]["message_id"]
    _, messages = ours(app, session_id)
    assert [m[0] for m in messages].count(Direction.TO_CLIENT) == 1


def test_assign_ack_and_close_callbacks_change_the_conversation(world):
    app, client, auth, sandbox = world
    start(client, auth)
    deliver(app)
    sent = sandbox.records("messages")[0]
    session_id = sent["session_id"]

    assert sandbox.counsellor("assign", session_id=session_id, counsellor="Baraka")["ok"]
    conversation, _ = ours(app, session_id)
    assert (conversation.state, conversation.counsellor) == ("active", "Baraka")

    assert sandbox.counsellor("ack", session_id=session_id, message_id=sent["message_id"])["ok"]
    _, messages = ours(app, session_id)
    assert messages[0][0] == Direction.TO_HELPLINE and messages[0][3] == "delivered"

    closed = sandbox.counsellor("close", session_id=session_id)
    assert closed["ok"] and closed["url"].endswith(f"/chat/{session_id}/close/")
    conversation, _ = ours(app, session_id)
    assert (conversation.state, conversation.closed_by) == ("closed", "counsellor")


def test_closing_from_the_chatbot_sends_the_closing_notice(world):
    app, client, auth, sandbox = world
    started = start(client, auth)
    deliver(app)
    response = client.post(f"/v1/conversations/{conversation_id(started)}/close",
                           headers=auth, json={})
    assert response.status_code in (200, 202), response.json
    deliver(app)
    texts = [m["message"] for m in sandbox.records("messages")]
    assert texts == ["I need help", "[conversation closed by the client]"]


def test_callbacks_need_a_token_issued_for_this_site(world):
    app, client, _, _ = world
    body = {"recipient": "client-x", "message_type": "text", "content": "hi"}
    assert client.post("/v1/sites/ke/openchs/message/", json=body).status_code == 401
    bad = client.post("/v1/sites/ke/openchs/message/", json=body,
                      headers={"Authorization": "Token not-a-token"})
    assert bad.status_code == 401 and bad.json["code"] == "unauthorized"
    # A chatbot API key is not a helpline callback token.
    _, _, auth, _ = world
    assert client.post("/v1/sites/ke/openchs/message/", json=body,
                       headers=auth).status_code == 401


def test_token_endpoint_checks_the_site_callback_credentials(world):
    app, client, _, _ = world
    wrong = client.post("/v1/sites/ke/openchs/token/",
                        json={"username": CALLBACK_USER, "password": "guess"})
    assert wrong.status_code == 401
    right = client.post("/v1/sites/ke/openchs/token/",
                        json={"username": CALLBACK_USER, "password": CALLBACK_PASSWORD})
    assert right.status_code == 200
    token = right.json["token"]
    headers = {"Authorization": f"Token {token}"}
    unknown = client.post("/v1/sites/ke/openchs/message/", headers=headers,
                          json={"recipient": "client-nobody", "content": "hi"})
    assert unknown.status_code == 404
    assert client.post("/v1/sites/zz/openchs/token/", json={"username": "a", "password": "b"}
                       ).status_code == 404


def test_token_endpoint_is_closed_when_the_site_sets_no_callback_login(
        app_factory, helpline, tmp_path, openchs_env, monkeypatch):
    monkeypatch.delenv("TEST_CALLBACK_USER")
    monkeypatch.delenv("TEST_CALLBACK_PASSWORD")
    folder = tmp_path / "c"
    openchs_site(folder, "ke", helpline.api_url)
    client = app_factory(countries=folder).test_client()
    response = client.post("/v1/sites/ke/openchs/token/", json={"username": "", "password": ""})
    assert response.status_code == 401
