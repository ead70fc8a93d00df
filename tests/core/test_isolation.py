"""Isolation: a reply never reaches another child, and nobody sees or changes a
conversation that is not theirs (the rules of ``adapter/access.py``, docs/security.md).

The reproductions of the audit (each failed on the code before the namespaces), then one
parametrised test over every route of the OpenAPI document: each caller of the matrix
gets exactly the answer the rules give it, and a refused call changes nothing.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import pytest

from adapter.callers import cache_for
from adapter.extensions import db
from adapter.models import ApiClient, Conversation, Delivery, Message
from plugins.webhook.signing import encode, signed_headers
from tests.conftest import make_client
from tests.core.conftest import counts, default_body
from tests.support.sites import write_site

CALLBACK_USER, CALLBACK_PASSWORD = "openchs-cb", "callback-secret"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"isolation-secret-32-bytes-long!!").decode()


@pytest.fixture
def sites_dir(tmp_path, monkeypatch):
    """Two OpenCHS sites (``lb``, ``ug``) and a webhook one (``wh``)."""
    monkeypatch.setenv("TEST_CB_USER", CALLBACK_USER)
    monkeypatch.setenv("TEST_CB_PASSWORD", CALLBACK_PASSWORD)
    monkeypatch.setenv("TEST_WH_SECRET", WEBHOOK_SECRET)
    folder = tmp_path / "countries-isolation"
    for code, town in (("lb", "Nairobi"), ("ug", "Kampala")):
        write_site(folder, code, name=f"OpenCHS {code}", plugin="openchs",
                   routing={"locations": [town]},
                   helpline={"base_url": "http://127.0.0.1:9/helpline/", "username": "u",
                             "password": "p", "callback_username": "${TEST_CB_USER}",
                             "callback_password": "${TEST_CB_PASSWORD}"},
                   rapidpro={"base_url": "http://127.0.0.1:9/", "token": "rp-token"})
    write_site(folder, "wh", name="Webhook", plugin="webhook", routing={"locations": ["Web"]},
               helpline={"url": "http://127.0.0.1:9/hook", "secret": "${TEST_WH_SECRET}"},
               rapidpro={"base_url": "http://127.0.0.1:9/", "token": "rp-token"})
    return folder


@pytest.fixture
def world(app_factory, sites_dir):
    app = app_factory(countries=sites_dir)
    return app, app.test_client()


def key_of(app, name, **kwargs) -> dict:
    return {"Authorization": f"Token {make_client(app, name, **kwargs)}"}


def start(client, headers, **body) -> dict:
    response = client.post("/v1/conversations", headers=headers,
                           json=default_body(site="lb", **body))
    assert response.status_code == 201, response.json
    return response.json


def site_token(client, site: str) -> dict:
    response = client.post(f"/v1/sites/{site}/openchs/token/",
                           json={"username": CALLBACK_USER, "password": CALLBACK_PASSWORD})
    assert response.status_code == 200, response.json
    return {"Authorization": f"Token {response.json['token']}"}


def share_contact(sites_dir) -> None:
    """Site ``lb`` opts in to give its helpline the chatbot's contact, not a pseudonym."""
    site_file = sites_dir / "lb.toml"
    site_file.write_text(site_file.read_text().replace("[helpline]",
                                                       '[helpline]\naddress = "contact"'))


def chatbot_deliveries(app) -> list[tuple[str, str]]:
    """(conversation id, action) of every delivery to the chatbot, in order."""
    with app.app_context():
        return [tuple(row) for row in db.session.execute(
            db.select(Delivery.conversation_id, Delivery.action)
            .where(Delivery.target == "chatbot").order_by(Delivery.id))]


# ---- 1. replies routed to another child ----------------------------------------------

def test_a_chatbot_id_equal_to_our_id_cannot_alias_a_conversation(world):
    app, client = world
    weni = key_of(app, "weni")
    other = key_of(app, "other-bot")
    first = start(client, weni, conversation_id="weni-run-1")

    for headers in (weni, other):  # neither the owner nor another chatbot may alias it
        refused = client.post("/v1/conversations", headers=headers, json=default_body(
            site="lb", conversation_id=first["id"], contact={"uuid": "another-child"}))
        assert refused.status_code == 422, refused.json
        assert refused.json["code"] == "conversation_id_reserved"
        assert "conversation_id" in refused.json["errors"]

    # A counsellor's reply to the first conversation, named as the helpline knows it.
    reply = client.post("/v1/sites/lb/openchs/message/", headers=site_token(client, "lb"),
                        json={"session_id": first["id"], "content": "I am here",
                              "message_id": "hl-1"})
    assert reply.status_code == 201, reply.json
    assert reply.json["conversation_id"] == first["id"]
    assert chatbot_deliveries(app)[-1] == (first["id"], "message")


def test_helpline_callbacks_never_resolve_the_chatbots_id(world):
    app, client = world
    weni = key_of(app, "weni")
    first = start(client, weni, conversation_id="shared-looking-id")
    token = site_token(client, "lb")

    by_chatbot_id = client.post("/v1/sites/lb/openchs/message/", headers=token, json={
        "session_id": "shared-looking-id", "content": "hello", "message_id": "hl-2"})
    by_ours = client.post(f"/v1/sites/lb/openchs/chat/{first['id']}/close/", headers=token,
                          json={"chat_source": "HELPLINE"})

    assert by_chatbot_id.status_code == 404
    assert by_ours.status_code == 200 and by_ours.json["conversation_id"] == first["id"]


def test_two_chatbots_may_use_the_same_id_and_each_gets_its_own(world):
    app, client = world
    weni, other = key_of(app, "weni"), key_of(app, "other-bot")
    mine = start(client, weni, conversation_id="run-42")
    theirs = client.post("/v1/conversations", headers=other, json=default_body(
        site="lb", conversation_id="run-42", contact={"uuid": "their-child"}))

    assert theirs.status_code == 201 and theirs.json["id"] != mine["id"]
    assert theirs.json["client"] != mine["client"]
    # Each chatbot's id names its own conversation.
    for headers, expected in ((weni, mine["id"]), (other, theirs.json["id"])):
        assert client.get("/v1/conversations/run-42", headers=headers).json["id"] == expected


def test_the_same_contact_under_two_chatbots_has_two_pseudonyms(world):
    """A chatbot that knows a child's number cannot receive replies addressed to that
    child's pseudonym (OpenCHS replies by recipient when it sends no session id)."""
    app, client = world
    mine = start(client, key_of(app, "weni"), conversation_id="a")
    theirs = start(client, key_of(app, "other-bot"), conversation_id="b")  # same contact

    reply = client.post("/v1/sites/lb/openchs/message/", headers=site_token(client, "lb"),
                        json={"recipient": mine["client"], "content": "hi", "message_id": "m"})

    assert mine["client"] != theirs["client"]
    assert reply.json["conversation_id"] == mine["id"]


def test_a_recipient_open_under_two_chatbots_is_refused_not_guessed(app_factory, sites_dir):
    share_contact(sites_dir)
    app = app_factory(countries=sites_dir)
    client = app.test_client()
    start(client, key_of(app, "weni"), conversation_id="a")
    start(client, key_of(app, "other-bot"), conversation_id="b")  # same contact uuid

    reply = client.post("/v1/sites/lb/openchs/message/", headers=site_token(client, "lb"),
                        json={"recipient": default_body()["contact"]["uuid"],
                              "content": "hi", "message_id": "m"})

    assert reply.status_code == 409 and reply.json["code"] == "ambiguous_recipient"
    assert chatbot_deliveries(app) == []


# ---- 2. who may see a conversation ---------------------------------------------------

def test_a_client_of_site_a_never_gets_site_bs_conversation(world):
    app, client = world
    weni = key_of(app, "weni")
    at_b = client.post("/v1/conversations", headers=weni, json=default_body(
        site="ug", conversation_id="conv-b")).json
    stranger_at_a = key_of(app, "lb-bot", sites=["lb"])
    sibling_at_a = key_of(app, "weni-lb", sites=["lb"], namespace="weni")

    own = client.post("/v1/conversations", headers=stranger_at_a,
                      json=default_body(site="lb", conversation_id="conv-b"))
    narrowed = client.post("/v1/conversations", headers=sibling_at_a,
                           json=default_body(site="lb", conversation_id="conv-b"))

    assert own.status_code == 201 and own.json["id"] != at_b["id"]
    assert own.json["site"] == "lb"
    assert narrowed.status_code == 403
    assert "counsellor" not in narrowed.json and "site" not in narrowed.json


def test_another_chatbot_on_the_same_site_cannot_read_the_text(world):
    app, client = world
    weni = key_of(app, "weni")
    started = start(client, weni, conversation_id="private")
    nosy = key_of(app, "nosy-bot", sites=["lb"], read_text=True)

    for reference in ("private", started["id"]):
        response = client.get(f"/v1/conversations/{reference}?include_text=true", headers=nosy)
        assert response.status_code == 404
        assert "I need to talk" not in response.get_data(as_text=True)


def test_metrics_need_a_monitor_and_show_only_its_sites(world):
    app, client = world
    start(client, key_of(app, "weni"))

    assert client.get("/metrics", headers=key_of(app, "bot-2")).status_code == 403
    ug_only = client.get("/metrics", headers=key_of(app, "mon", role="monitor", sites=["ug"]))
    everything = client.get("/metrics", headers=key_of(app, "mon-all", role="monitor"))

    assert 'site="lb"' not in ug_only.get_data(as_text=True)
    assert 'site="lb"' in everything.get_data(as_text=True)


def test_a_seed_chat_cannot_join_another_chatbots_session(world):
    app, client = world
    chat = {"chat_sender": "c-1", "chat_message": "hi", "chat_session": "seed-1",
            "chat_source": "WENI", "site": "lb"}
    first = client.post("/api/chat/", json=chat, headers=key_of(app, "weni"))
    second = client.post("/api/chat/", json={**chat, "chat_message": "not yours"},
                         headers=key_of(app, "other-bot"))

    assert first.status_code == second.status_code == 201
    with app.app_context():
        owners = db.session.execute(
            db.select(Conversation.namespace).where(Conversation.external_id == "seed-1")
            .order_by(Conversation.namespace)).scalars().all()
        assert owners == ["other-bot", "weni"]
        texts = db.session.execute(
            db.select(Message.text).join(Conversation)
            .where(Conversation.namespace == "weni")).scalars().all()
        assert texts == ["hi"]


# ---- 5. an idempotent replay checks access first -------------------------------------

def test_a_replay_is_refused_once_the_clients_sites_are_narrowed(world):
    app, client = world
    weni = key_of(app, "weni")
    headers = {**weni, "Idempotency-Key": "escalation-7"}
    first = client.post("/v1/conversations", headers=headers, json=default_body(site="lb"))
    assert first.status_code == 201
    with app.app_context():
        db.session.execute(db.update(ApiClient).where(ApiClient.name == "weni")
                           .values(sites=["ug"]))
        db.session.commit()
        cache_for(app).forget()

    again = client.post("/v1/conversations", headers=headers, json=default_body(site="lb"))

    assert again.status_code == 403
    assert "Idempotent-Replayed" not in again.headers


# ---- 4. phone numbers through the seed API -------------------------------------------

@pytest.mark.parametrize("sender", [23343411, "+254711222333", "tel:+254711222333"])
def test_a_phone_number_sender_is_a_urn_never_shown_to_the_helpline(world, sender):
    app, client = world
    chat = {"chat_sender": sender, "chat_message": "hi", "chat_session": "seed-phone",
            "chat_source": "WENI", "site": "lb"}
    assert client.post("/api/chat/", json=chat, headers=key_of(app, "weni")).status_code == 201
    helpline = key_of(app, "openchs-lb", role="helpline", sites=["lb"])

    [shown] = client.get("/api/chat/", headers=helpline).json["results"]

    digits = "".join(ch for ch in str(sender) if ch.isdigit())
    assert digits not in str(shown)
    assert shown["chat_sender"].startswith("client-")
    with app.app_context():
        conversation = db.session.execute(db.select(Conversation)).scalar_one()
        assert conversation.contact_uuid is None
        assert conversation.contact_urn.endswith(digits)


def test_a_site_that_opts_in_shows_its_helpline_the_number(app_factory, sites_dir):
    share_contact(sites_dir)
    app = app_factory(countries=sites_dir)
    client = app.test_client()
    client.post("/api/chat/", headers=key_of(app, "weni"), json={
        "chat_sender": "+254711222333", "chat_message": "hi", "chat_session": "s",
        "chat_source": "WENI", "site": "lb"})

    helpline = key_of(app, "hl", role="helpline")
    [shown] = client.get("/api/chat/", headers=helpline).json["results"]

    assert shown["chat_sender"] == "+254711222333"


# ---- the matrix: every route, every kind of caller -----------------------------------

CALLERS = ("anonymous", "owner", "sibling_other_site", "stranger_same_site", "reader",
           "helpline", "helpline_other_site", "monitor", "site_callback",
           "other_site_callback")


@dataclass
class Ids:
    chatbot: str  # the chatbot's conversation id
    ours: str  # ours: the helpline's session id
    case_chatbot: str
    case_ours: str
    counsellor_message: str
    client_message: str


def _setup(app, client) -> tuple[dict[str, dict], Ids]:
    headers = {
        "anonymous": {},
        "owner": key_of(app, "weni", read_text=True),
        "sibling_other_site": key_of(app, "weni-ug", sites=["ug"], namespace="weni"),
        "stranger_same_site": key_of(app, "other-bot", sites=["lb"], read_text=True),
        "reader": key_of(app, "dashboard", sites=["lb"], reads_all=True),
        "helpline": key_of(app, "openchs-lb", role="helpline", sites=["lb"]),
        "helpline_other_site": key_of(app, "openchs-ug", role="helpline", sites=["ug"]),
        "monitor": key_of(app, "prometheus", role="monitor"),
        "site_callback": site_token(client, "lb"),
        "other_site_callback": site_token(client, "ug"),
    }
    started = start(client, headers["owner"], conversation_id="conv-1")
    case = client.post("/v1/cases", headers=headers["owner"], json={
        "site": "lb", "case_id": "case-1", "intake": {"narrative": "x"}})
    assert case.status_code == 202, case.json
    reply = client.post("/v1/sites/lb/openchs/message/", headers=headers["site_callback"],
                        json={"session_id": started["id"], "content": "hi", "message_id": "h1"})
    assert reply.status_code == 201, reply.json
    with app.app_context():
        first_message = db.session.execute(
            db.select(Message.id).where(Message.conversation_id == started["id"],
                                        Message.direction == "to_helpline")).scalar_one()
    return headers, Ids(started["conversation_id"], started["id"], "case-1",
                        case.json["case_id"], reply.json["message_id"], first_message)


def _signed_webhook(data: dict) -> tuple[str, dict]:
    body = encode({"type": "message.created", "data": data})
    return body, signed_headers(WEBHOOK_SECRET, "evt-matrix", body)


# Each route: how each caller calls it (method, path, json), given the ids. A caller
# names a conversation the way it would: a chatbot by its own id, everyone else by ours.
def _ref(caller: str, ids: Ids) -> str:
    return ids.chatbot if caller in ("owner", "sibling_other_site", "stranger_same_site") \
        else ids.ours


def _case_ref(caller: str, ids: Ids) -> str:
    return ids.case_chatbot if caller in ("owner", "sibling_other_site",
                                          "stranger_same_site") else ids.case_ours


def _chat_source(caller: str) -> str:
    return "HELPLINE" if caller.startswith("helpline") else "WENI"


ROUTES = {
    ("get", "/metrics"): lambda c, ids: ("/metrics", None),
    ("post", "/v1/conversations"): lambda c, ids: (
        "/v1/conversations", default_body(site="lb", conversation_id=ids.chatbot)),
    ("post", "/v1/conversations/{conversation_id}/messages"): lambda c, ids: (
        f"/v1/conversations/{_ref(c, ids)}/messages", {"text": "more", "message_id": "m-2"}),
    ("post", "/v1/conversations/{conversation_id}/close"): lambda c, ids: (
        f"/v1/conversations/{_ref(c, ids)}/close", {}),
    ("post", "/v1/conversations/{conversation_id}/acks"): lambda c, ids: (
        f"/v1/conversations/{_ref(c, ids)}/acks",
        {"message_id": ids.counsellor_message, "status": "delivered"}),
    # Text asked for by the chatbots (the stranger may read text: its 404 is the rule's).
    ("get", "/v1/conversations/{conversation_id}"): lambda c, ids: (
        f"/v1/conversations/{_ref(c, ids)}"
        + ("?include_text=true" if _ref(c, ids) == ids.chatbot else ""), None),
    ("post", "/v1/cases"): lambda c, ids: (
        "/v1/cases", {"conversation_id": ids.chatbot if c != "reader" else ids.ours,
                      "case_id": "case-2", "intake": {"narrative": "y"}}),
    ("get", "/v1/cases/{case_id}"): lambda c, ids: (f"/v1/cases/{_case_ref(c, ids)}", None),
    ("get", "/api/chat/"): lambda c, ids: ("/api/chat/", None),
    ("post", "/api/chat/"): lambda c, ids: ("/api/chat/", {
        "chat_sender": "counsellor-1" if c.startswith("helpline") else "c-1",
        "chat_message": "hello", "chat_session": _ref(c, ids),
        "chat_source": "OUTBOX" if c.startswith("helpline") else "WENI"}),
    ("post", "/api/chat/{session}/close/"): lambda c, ids: (
        f"/api/chat/{_ref(c, ids)}/close/", {"chat_source": _chat_source(c)}),
    ("post", "/v1/sites/{site}/openchs/message/"): lambda c, ids: (
        f"/v1/sites/{'ug' if c == 'other_site_callback' else 'lb'}/openchs/message/",
        {"session_id": ids.ours, "content": "again", "message_id": "h2"}),
    ("post", "/v1/sites/{site}/openchs/chat/{session_id}/close/"): lambda c, ids: (
        f"/v1/sites/{'ug' if c == 'other_site_callback' else 'lb'}/openchs/chat/"
        f"{ids.ours}/close/", {"chat_source": "HELPLINE"}),
    ("post", "/v1/sites/{site}/openchs/assign/"): lambda c, ids: (
        f"/v1/sites/{'ug' if c == 'other_site_callback' else 'lb'}/openchs/assign/",
        {"session_id": ids.ours, "counsellor": "counsellor-2"}),
    ("post", "/v1/sites/{site}/openchs/ack/"): lambda c, ids: (
        f"/v1/sites/{'ug' if c == 'other_site_callback' else 'lb'}/openchs/ack/",
        {"session_id": ids.ours, "message_id": ids.client_message, "status": "delivered"}),
}

# What the rules give each caller: a status, or "ok" (any 2xx). Callers not named get
# the route's ``"else"``. Refusals of a conversation one may not see are 404; of a role
# or a site one may not use, 403; of no (or the wrong kind of) credential, 401.
CHATBOT_WRITE = {"owner": "ok", "sibling_other_site": 403, "stranger_same_site": 404,
                 "reader": 404, "anonymous": 401, "site_callback": 401,
                 "other_site_callback": 401, "else": 403}
CALLBACK = {"site_callback": "ok", "other_site_callback": 404, "else": 401}
EXPECTED = {
    ("get", "/metrics"): {"monitor": "ok", "anonymous": 401, "site_callback": 401,
                          "other_site_callback": 401, "else": 403},
    # Another chatbot starting with this id gets a conversation of its own (checked below).
    ("post", "/v1/conversations"): {**CHATBOT_WRITE, "stranger_same_site": "ok",
                                    "reader": "ok"},
    ("post", "/v1/conversations/{conversation_id}/messages"): CHATBOT_WRITE,
    ("post", "/v1/conversations/{conversation_id}/close"): CHATBOT_WRITE,
    ("post", "/v1/conversations/{conversation_id}/acks"): CHATBOT_WRITE,
    ("get", "/v1/conversations/{conversation_id}"): {
        **CHATBOT_WRITE, "reader": "ok", "helpline": "ok"},
    ("post", "/v1/cases"): CHATBOT_WRITE,
    ("get", "/v1/cases/{case_id}"): {**CHATBOT_WRITE, "reader": "ok", "helpline": "ok"},
    # Everyone sees a list; whose chats are in it is checked below.
    ("get", "/api/chat/"): {"monitor": 403, "anonymous": 401, "site_callback": 401,
                            "other_site_callback": 401, "else": "ok"},
    # A chatbot's new chat_session is its own conversation; our id of another's is refused.
    ("post", "/api/chat/"): {**CHATBOT_WRITE, "stranger_same_site": "ok", "reader": 422,
                             "helpline": "ok"},
    ("post", "/api/chat/{session}/close/"): {**CHATBOT_WRITE, "helpline": "ok"},
    ("post", "/v1/sites/{site}/openchs/message/"): CALLBACK,
    ("post", "/v1/sites/{site}/openchs/chat/{session_id}/close/"): CALLBACK,
    ("post", "/v1/sites/{site}/openchs/assign/"): CALLBACK,
    ("post", "/v1/sites/{site}/openchs/ack/"): CALLBACK,
}
# The seed's API is also served at its own URLs (/open/api/...): the same rules there.
def _under_open(build):
    def built(caller, ids):
        path, body = build(caller, ids)
        return "/open" + path, body
    return built


for (_method, _path), _build in list(ROUTES.items()):
    if _path.startswith("/api/"):
        ROUTES[(_method, "/open" + _path)] = _under_open(_build)
        EXPECTED[(_method, "/open" + _path)] = EXPECTED[(_method, _path)]

# Answer the same to everyone (they take no credential, or their own): tested apart.
PUBLIC = {("get", "/healthz"), ("get", "/readyz"), ("post", "/api/token/"),
          ("post", "/open/api/token/"), ("post", "/v1/sites/{site}/openchs/token/"),
          # A re-hosted attachment: its unguessable, expiring token is the credential
          # (tests/integration/test_attachments.py).
          ("get", "/v1/media/{site}/{token}")}
SIGNED = {("post", "/v1/sites/{site}/webhook/events/")}
# The Weni ticketer's routes: the same rules, on sites that serve tickets
# (tests/dialects/test_weni_ticketer_isolation.py, with the contract's error envelope).
TICKETS = {("post", "/v1/tickets"), ("post", "/v1/tickets/{external_id}/messages"),
           ("post", "/v1/tickets/{external_id}/close"),
           ("post", "/v1/tickets/{external_id}/reopen"),
           ("post", "/v1/tickets/{external_id}/history")}


def test_the_matrix_covers_every_route_of_the_openapi_document(world):
    _, client = world
    paths = client.get("/openapi.json").json["paths"]
    documented = {(method, path) for path, operations in paths.items()
                  for method in operations if method in ("get", "post", "put", "patch",
                                                          "delete")}
    assert documented == set(EXPECTED) | PUBLIC | SIGNED | TICKETS
    assert set(ROUTES) == set(EXPECTED)


@pytest.mark.parametrize("route", sorted(EXPECTED), ids=lambda r: f"{r[0]} {r[1]}")
def test_each_caller_gets_what_the_rules_give_it(world, route):
    app, client = world
    headers, ids = _setup(app, client)
    rules = EXPECTED[route]
    method, _ = route
    # The owner (and others allowed) last: an allowed close must not hide the refusals.
    order = sorted(CALLERS, key=lambda c: rules.get(c, rules["else"]) == "ok")
    for caller in order:
        path, body = ROUTES[route](caller, ids)
        expected = rules.get(caller, rules["else"])
        before = counts(app)
        response = (client.get(path, headers=headers[caller]) if method == "get"
                    else client.post(path, json=body, headers=headers[caller]))
        label = f"{caller} {method.upper()} {path}: {response.status_code} {response.json}"
        if expected == "ok":
            assert 200 <= response.status_code < 300, label
        else:
            assert response.status_code == expected, label
            assert counts(app) == before, label  # a refusal changes nothing
        _no_one_elses_data(app, caller, route, response, ids)


def _no_one_elses_data(app, caller, route, response, ids) -> None:
    """What an allowed answer may show: never the owner's conversation to a stranger."""
    if response.status_code >= 300:
        return
    text = response.get_data(as_text=True)
    if caller in ("stranger_same_site",) and route[1] in ("/v1/conversations", "/api/chat/",
                                                          "/open/api/chat/"):
        assert ids.ours not in text, f"{caller} saw the owner's conversation: {text}"
    if route in (("get", "/api/chat/"), ("get", "/open/api/chat/")):
        sessions = {chat["chat_session"] for chat in response.json["results"]}
        sees = caller in ("owner", "reader", "helpline")
        assert bool(sessions & {ids.chatbot, ids.ours}) == sees, (caller, sessions)


def test_signed_webhook_callbacks_reach_only_their_own_sites_conversations(world):
    app, client = world
    headers, ids = _setup(app, client)
    body, signed = _signed_webhook({"session_id": ids.ours, "text": "wrong site",
                                    "message_id": "w1"})
    before = counts(app)

    for credentials in ({}, headers["owner"], headers["site_callback"]):
        assert client.post("/v1/sites/wh/webhook/events/", data=body,
                           headers={"Content-Type": "application/json",
                                    **credentials}).status_code == 401
    misrouted = client.post("/v1/sites/wh/webhook/events/", data=body, headers=signed)

    assert misrouted.status_code == 404  # lb's conversation, named at wh
    assert counts(app) == before


# ---- the console: namespaces and roles -----------------------------------------------

def test_a_key_created_in_a_namespace_shares_its_conversations(world):
    app, client = world
    started = start(client, key_of(app, "weni"), conversation_id="rotating")
    runner = app.test_cli_runner()

    created = runner.invoke(args=["clients", "create", "weni-2026", "--namespace", "weni"])
    monitor = runner.invoke(args=["clients", "create", "prom", "--role", "monitor"])
    refused = runner.invoke(args=["clients", "create", "hl", "--role", "helpline",
                                  "--namespace", "weni"])
    listed = runner.invoke(args=["clients", "list"])

    assert created.exit_code == 0 and "namespace 'weni'" in created.output
    rotated = {"Authorization": f"Token {created.output.strip().splitlines()[-1]}"}
    assert client.get("/v1/conversations/rotating", headers=rotated).json["id"] == started["id"]
    prom = {"Authorization": f"Token {monitor.output.strip().splitlines()[-1]}"}
    assert client.get("/metrics", headers=prom).status_code == 200
    assert client.get("/v1/conversations/rotating", headers=prom).status_code == 403
    assert refused.exit_code == 1 and "--namespace" in refused.output
    assert "weni-2026\tchatbot\t*\tactive\tnamespace=weni" in listed.output


@pytest.mark.parametrize("recipient", ["%", "_", "%254%"])
def test_a_wildcard_recipient_matches_no_conversation(app_factory, sites_dir, recipient):
    share_contact(sites_dir)
    app = app_factory(countries=sites_dir)
    client = app.test_client()
    start(client, key_of(app, "weni"), conversation_id="a",
          contact={"urn": "tel:+254711222333"})  # no uuid: the URN is the contact

    reply = client.post("/v1/sites/lb/openchs/message/", headers=site_token(client, "lb"),
                        json={"recipient": recipient, "content": "hi", "message_id": "m"})

    assert reply.status_code == 404
    assert chatbot_deliveries(app) == []
