"""``POST /api/chat/<session>/close/`` and ``GET /api/chat/``."""

from __future__ import annotations

from adapter.extensions import db
from adapter.models import Conversation, Delivery
from tests.compat.conftest import login, make_account
from tests.compat.test_chat import SEED_CHAT, helpline_session

UUID_SESSION = "529150097d63-4c1e-9a2b-7f3e-0b1c2d3e4f50"


def _start(client, headers, session: str = UUID_SESSION, text: str = "hi") -> None:
    response = client.post("/api/chat/", json={**SEED_CHAT, "chat_session": session,
                                               "chat_message": text}, headers=headers)
    assert response.status_code == 201, response.json


def _conversation(app, session: str) -> Conversation:
    with app.app_context():
        return db.session.execute(
            db.select(Conversation).where(Conversation.external_id == session)).scalar_one()


def test_a_hyphenated_session_closes_and_closing_again_is_200(app, client, weni):
    _start(client, weni)
    first = client.post(f"/api/chat/{UUID_SESSION}/close/", json={"chat_source": "WENI"},
                        headers=weni)
    second = client.post(f"/api/chat/{UUID_SESSION}/close/", json={"chat_source": "WENI"},
                         headers=weni)
    assert first.status_code == second.status_code == 200
    assert first.json == second.json == {"status": "success", "chat_session": UUID_SESSION,
                                         "closed_by": "client"}
    conversation = _conversation(app, UUID_SESSION)
    with app.app_context():
        closes = db.session.execute(
            db.select(Delivery).where(Delivery.conversation_id == conversation.id,
                                      Delivery.action == "close")).scalars().all()
    assert len(closes) == 1  # the helpline is told once


def test_the_seed_close_without_content_type_or_trailing_slash_works(client, weni):
    _start(client, weni)
    # As curl --data-raw sends it: no Content-Type header means a form content type.
    response = client.post(f"/api/chat/{UUID_SESSION}/close", data='{"chat_source": "WENI"}',
                           content_type="application/x-www-form-urlencoded", headers=weni)
    assert response.status_code == 200, response.json


def test_closing_an_unknown_session_is_404(client, weni):
    response = client.post("/api/chat/no-such-session/close/", json={"chat_source": "WENI"},
                           headers=weni)
    assert response.status_code == 404
    assert response.json["code"] == "conversation_not_found"


def test_the_helpline_closes_as_helpline(app, client, weni, counsellors):
    _start(client, weni)
    session = helpline_session(client, counsellors)  # ours: the id its helpline knows
    assert client.post(f"/api/chat/{UUID_SESSION}/close/", json={"chat_source": "HELPLINE"},
                       headers=counsellors).status_code == 404  # the chatbot's id is not
    response = client.post(f"/api/chat/{session}/close/",
                           json={"chat_source": "HELPLINE"}, headers=counsellors)
    assert response.status_code == 200
    assert response.json["closed_by"] == "counsellor"
    refused = client.post(f"/api/chat/{UUID_SESSION}/close/", json={"chat_source": "HELPLINE"},
                          headers=weni)
    assert refused.status_code == 403


def test_a_close_naming_no_side_closes_from_the_callers(client, weni):
    _start(client, weni)
    response = client.post(f"/api/chat/{UUID_SESSION}/close/", headers=weni)
    assert response.status_code == 200
    assert response.json["closed_by"] == "client"


def test_a_bad_source_is_named(client, weni):
    _start(client, weni)
    response = client.post(f"/api/chat/{UUID_SESSION}/close/", json={"chat_source": "SMS"},
                           headers=weni)
    assert response.status_code == 400
    assert set(response.json["errors"]) == {"chat_source"}


def test_the_list_is_the_callers_chats_newest_first_in_pages(client, weni):
    for n in range(3):
        _start(client, weni, session=f"s{n}", text=f"message {n}")
    first = client.get("/api/chat/?page_size=2", headers=weni)
    assert first.status_code == 200
    assert first.json["count"] == 3
    assert [c["chat_session"] for c in first.json["results"]] == ["s2", "s1"]
    assert first.json["previous"] is None
    assert first.json["next"] == "http://localhost/api/chat/?page=2&page_size=2"
    second = client.get(first.json["next"], headers=weni)
    assert [c["chat_session"] for c in second.json["results"]] == ["s0"]
    assert second.json["next"] is None and second.json["previous"].endswith("page=1&page_size=2")
    chat = second.json["results"][0]
    assert chat["chat_sender"] == "23343411" and chat["chat_source"] == "WENI"
    assert chat["chat_message"] is None  # this account may not read text
    assert client.get("/api/chat/?page=3&page_size=2", headers=weni).status_code == 404


def test_text_is_shown_only_to_accounts_allowed_to_read_it(app, client, weni):
    _start(client, weni, text="secret words")
    make_account(app, name="auditor", password="pw-auditor", role="helpline", read_text=True)
    reader = login(client, "auditor", "pw-auditor")
    [chat] = client.get("/api/chat/", headers=reader).json["results"]
    assert chat["chat_message"] == "secret words"
    # A helpline account sees the pseudonym and our session id, never the number.
    assert chat["chat_sender"].startswith("client-")
    assert chat["chat_session"] == _conversation(app, UUID_SESSION).id


def test_another_chatbot_account_does_not_see_these_chats(app, client, weni):
    _start(client, weni)
    make_account(app, name="other-bot", password="pw-other", sites=["lb"])
    other = login(client, "other-bot", "pw-other")
    assert client.get("/api/chat/", headers=other).json == {
        "count": 0, "next": None, "previous": None, "results": []}


def test_a_bad_page_size_is_named(client, weni):
    response = client.get("/api/chat/?page_size=0", headers=weni)
    assert response.status_code == 400
    assert "page_size" in response.json["errors"]
