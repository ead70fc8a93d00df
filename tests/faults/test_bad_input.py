"""Bad input on every route, found by walking the OpenAPI document — a new route is
covered without touching this file.

What tests/core already checks for a fixed list of routes (no key, a wrong key or
scheme, 413 and 415 on the start route) is checked here for every operation, with
what it leaves out: forged and expired tokens, another site's credentials, oversized
and deeply nested bodies, wrong content types. Each answer is the JSON error shape
with the documented status, never a 2xx, a 5xx or a stack trace, and nothing is stored.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from datetime import UTC

import pytest
from sqlalchemy import func, select

from adapter.auth import issue_token
from adapter.extensions import db
from adapter.models import ApiClient, Conversation, Delivery, Message
from tests.conftest import make_client
from tests.support import loopback_plugin
from tests.support.sites import write_site

#: Routes anyone may call: liveness, readiness, and the two logins (their credentials
#: are in the body, and tests/compat and tests/plugins cover wrong ones).
PUBLIC = {("get", "/healthz"), ("get", "/readyz"), ("post", "/api/token/"),
          ("post", "/open/api/token/"),
          ("post", "/v1/sites/{site}/openchs/token/"),
          # A re-hosted attachment: its unguessable, expiring token is the credential
          # (tests/integration/test_attachments.py).
          ("get", "/v1/media/{site}/{token}")}
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"bad-input-webhook-secret-32bytes").decode()
STRANGER_SECRET = "whsec_" + base64.b64encode(b"someone-elses-secret-32-bytes!!!").decode()
TRACE_MARKERS = ("Traceback", 'File "', "sqlalchemy", "psycopg", "werkzeug")
SITE_OF_KIND = {"openchs": "ke", "webhook": "wh"}


@pytest.fixture
def db_backend() -> str:
    return "sqlite"  # the answers do not depend on the database; keep the walk fast


@pytest.fixture
def app(app_factory, tmp_path, monkeypatch):
    monkeypatch.setenv("BAD_INPUT_WEBHOOK_SECRET", WEBHOOK_SECRET)
    folder = tmp_path / "sites"
    write_site(folder, "lb", name="Loopback", plugin="loopback",
               routing={"locations": ["Nairobi"]}, helpline={"url": "http://127.0.0.1:9/lb"})
    write_site(folder, "ug", name="Loopback Uganda", plugin="loopback",
               routing={"locations": ["Kampala"]}, helpline={"url": "http://127.0.0.1:9/ug"})
    write_site(folder, "ke", name="OpenCHS", plugin="openchs",
               routing={"locations": ["Mombasa"]},
               helpline={"base_url": "http://127.0.0.1:9/helpline/", "username": "u",
                         "password": "p", "callback_username": "cb",
                         "callback_password": "cb-secret"})
    write_site(folder, "wh", name="Webhook", plugin="webhook",
               routing={"locations": ["Kisumu"]},
               helpline={"url": "http://127.0.0.1:9/wh", "secret": "${BAD_INPUT_WEBHOOK_SECRET}",
                         "callback_secrets": [WEBHOOK_SECRET]})
    return app_factory(countries=folder, plugins=(loopback_plugin,), RATE_LIMIT_PER_MINUTE=0)


def operations(app) -> list[tuple[str, str, dict]]:
    document = app.test_client().get("/openapi.json").get_json()
    return [(method, path, op) for path, ops in document["paths"].items()
            for method, op in ops.items() if method in ("get", "post", "put", "patch", "delete")]


def authenticated(app) -> list[tuple[str, str, dict]]:
    found = [op for op in operations(app) if (op[0], op[1]) not in PUBLIC]
    assert len(found) >= 15, [f"{m} {p}" for m, p, _ in found]
    return found


def with_body(app) -> list[tuple[str, str, dict]]:
    return [op for op in operations(app) if "requestBody" in op[2]]


class World:
    """A conversation and a case at site ``lb``, the ids to fill paths with."""

    def __init__(self, app, client) -> None:
        self.app = app
        self.key = make_client(app, "owner", read_text=True)
        auth = {"Authorization": f"Token {self.key}"}
        started = client.post("/v1/conversations", headers=auth,
                              json={"site": "lb", "text": "hi", "message_id": "w-m0",
                                    "results": {"conversation_id": {"value": "w-1"}}})
        assert started.status_code == 201, started.get_data(as_text=True)
        self.conversation = started.get_json()
        case = client.post("/v1/cases", headers=auth,
                           json={"site": "lb", "intake": {"age": 12, "narrative": "n"}})
        assert case.status_code in (201, 202), case.get_data(as_text=True)
        self.case_id = case.get_json()["case_id"]

    def path(self, template: str) -> str:
        kind = re.search(r"/v1/sites/\{site\}/(\w+)/", template)
        values = {"conversation_id": self.conversation["conversation_id"],
                  "session": self.conversation["id"], "session_id": self.conversation["id"],
                  "case_id": self.case_id, "external_id": self.conversation["id"],
                  "site": SITE_OF_KIND.get(kind.group(1), "lb") if kind else "lb"}
        return re.sub(r"\{(\w+)\}", lambda m: str(values[m.group(1)]), template)

    def counts(self) -> dict[str, int]:
        with self.app.app_context():
            return {model.__tablename__: db.session.scalar(select(func.count()).select_from(model))
                    for model in (Conversation, Message, Delivery)}


@pytest.fixture
def world(app, client) -> World:
    return World(app, client)


def token_for(app, *, site: str | None = None, client_name: str | None = None,
              ttl: int = 3600) -> str:
    with app.app_context():
        owner = db.session.execute(select(ApiClient).where(ApiClient.name == client_name)
                                   ).scalar_one() if client_name else None
        token = issue_token(client=owner, site=site, ttl=ttl)
        db.session.commit()
    return token


def assert_error(response, *statuses: int) -> dict:
    text = response.get_data(as_text=True)
    assert response.status_code in statuses, (response.status_code, text[:300])
    assert not any(marker in text for marker in TRACE_MARKERS), text[:300]
    body = response.get_json()
    if response.request.path.startswith("/v1/tickets"):  # the Weni contract's envelope
        assert {"error", "message"} <= set(body) <= {"error", "message", "details"}, body
        return {"code": body["error"], "message": body["message"],
                "errors": (body.get("details") or {}).get("fields", {})}
    assert set(body) == {"code", "message", "errors"}, body
    return body


def call(client, method: str, path: str, headers: dict, data: bytes | None = b"{}",
         content_type: str = "application/json"):
    if method == "get":
        return client.get(path, headers=headers)
    return client.open(path, method=method.upper(), data=data, headers=headers,
                       content_type=content_type)


def _webhook_headers(secret: str, body: bytes) -> dict:
    from datetime import datetime

    from standardwebhooks import Webhook

    now = datetime.now(UTC)
    msg_id = f"msg_{secrets.token_hex(8)}"
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(secret).sign(msg_id, now, body.decode())}


# -- credentials --------------------------------------------------------------------------

@pytest.mark.parametrize("forgery", ["forged-key", "forged-token", "expired-token",
                                     "expired-site-token"])
def test_every_authenticated_route_refuses_forged_and_expired_credentials(
        app, client, world, forgery):
    credential = {
        "forged-key": "hla_" + secrets.token_urlsafe(32),
        "forged-token": secrets.token_hex(20),  # the shape of a real OpenCHS-style token
        "expired-token": token_for(app, client_name="owner", ttl=-1),
        "expired-site-token": token_for(app, site="ke", ttl=-1),
    }[forgery]
    before = world.counts()
    for method, template, _ in authenticated(app):
        path = world.path(template)
        headers = {"Authorization": f"Token {credential}"}
        if "/webhook/" in template:  # signed, not token-authenticated: forge the signature
            headers = _webhook_headers(STRANGER_SECRET, b"{}")
        assert_error(call(client, method, path, headers), 401)
    assert world.counts() == before


def test_other_site_credentials_are_refused_on_every_site_bound_route(app, client, world):
    """A chatbot client limited to ``ug``, a callback token of site ``lb``, a webhook signed
    with another site's secret: each refused where the conversation, case or site is
    another's."""
    ug_key = make_client(app, "ug-only", sites=["ug"], namespace="owner")  # its own chatbot
    other_site_token = token_for(app, site="lb")
    before = world.counts()
    checked = 0
    for method, template, _ in authenticated(app):
        path = world.path(template)
        if "/v1/sites/" in template:
            headers = (_webhook_headers(STRANGER_SECRET, b"{}") if "/webhook/" in template
                       else {"Authorization": f"Token {other_site_token}"})
            assert_error(call(client, method, path, headers), 401)
        elif "{" in template or template in ("/v1/conversations", "/v1/cases"):
            body = json.dumps(_valid_body(template)).encode()
            response = call(client, method, path, {"Authorization": f"Token {ug_key}"}, body)
            assert_error(response, 403, 404)
            if response.status_code == 404:  # must not tell another site's ids apart
                # (a ticket route: this conversation is no ticket, whoever asks)
                assert template.startswith(("/api/chat/", "/open/api/chat/",
                                            "/v1/tickets/")), (
                    template, response.get_json())
        else:
            continue
        checked += 1
    assert checked >= 12
    assert world.counts() == before


def _valid_body(template: str) -> dict:
    """A body each route accepts, so the site check is what answers."""
    if template.startswith("/v1/tickets/"):  # the Weni contract's own examples
        from tests.dialects import weni_contract as contract

        return {"messages": contract.FORWARD_BODY, "close": contract.CLOSE_BODY,
                "reopen": contract.REOPEN_BODY,
                "history": contract.HISTORY_BODY}[template.rsplit("/", 1)[-1]]
    for suffix, body in (("/messages", {"text": "x", "message_id": "x"}),
                         ("/close", {"reason": "resolved"}),
                         ("/close/", {"chat_source": "WENI"}),
                         ("/acks", {"message_id": "x", "status": "read"}),
                         ("/api/chat/", {"chat_sender": "c", "chat_receiver": "lb",
                                         "chat_message": "x", "chat_session": "w-1",
                                         "chat_source": "WENI"}),
                         ("/v1/cases", {"site": "lb", "intake": {"narrative": "x"}})):
        if template.endswith(suffix):
            return body
    return {"site": "lb", "text": "x", "message_id": "x"}


# -- bodies -------------------------------------------------------------------------------

def _valid_headers(app, template: str, key: str, body: bytes) -> dict:
    if "/webhook/" in template:
        return _webhook_headers(WEBHOOK_SECRET, body)
    if "/openchs/" in template and not template.endswith("/token/"):
        return {"Authorization": f"Token {token_for(app, site='ke')}"}
    return {"Authorization": f"Token {key}"}


def test_an_oversized_body_is_413_on_every_route(app, client, world):
    body = json.dumps({"text": "x" * (70 * 1024)}).encode()
    before = world.counts()
    for method, template, _ in with_body(app):
        headers = _valid_headers(app, template, world.key, body)
        assert_error(call(client, method, world.path(template), headers, body), 413)
    assert world.counts() == before


@pytest.mark.parametrize("depth", [2_000, 20_000])
def test_a_deeply_nested_body_is_refused_not_crashed_on_every_route(app, client, world, depth):
    body = ('{"text": ' + "[" * depth + "]" * depth + "}").encode()
    assert len(body) < 64 * 1024
    before = world.counts()
    for method, template, _ in with_body(app):
        headers = _valid_headers(app, template, world.key, body)
        assert_error(call(client, method, world.path(template), headers, body), 400, 422)
    assert world.counts() == before


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "application/xml", "multipart/form-data"])
def test_a_wrong_content_type_is_refused_on_every_route(app, client, world, content_type):
    """415 where the route is JSON-only; the seed's chat API takes any content type (PHP
    callers send JSON as text/plain), so there a body that is not JSON is a 400."""
    body = b"site=lb&text=hello"
    before = world.counts()
    for method, template, op in with_body(app):
        headers = _valid_headers(app, template, world.key, body)
        expected = 415 if "415" in op["responses"] else 400
        assert_error(call(client, method, world.path(template), headers, body, content_type),
                     expected)
    assert world.counts() == before
