"""Who may call: keys (hashed, revocable), roles, and sites; the ``clients`` commands."""

from __future__ import annotations

import pytest

from adapter.auth import hash_secret
from adapter.extensions import db
from adapter.models import ApiClient
from tests.conftest import make_client

from .conftest import counts, default_body, start
from .test_errors import error_of

ROUTES = [
    ("post", "/v1/conversations", default_body()),
    ("post", "/v1/conversations/c-1/messages", {"message_id": "m", "text": "hi"}),
    ("post", "/v1/conversations/c-1/close", {}),
    ("post", "/v1/conversations/c-1/acks", {"message_id": "m", "status": "read"}),
    ("get", "/v1/conversations/c-1", None),
]


def _call(client, method, path, body, headers):
    return getattr(client, method)(path, json=body, headers=headers)


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Token hla_not-a-key-we-ever-issued"},
    {"Authorization": "Basic d2VuaTpzZWNyZXQ="},
    {"Authorization": "Token"},
], ids=["none", "wrong-key", "wrong-scheme", "empty"])
def test_every_route_answers_401_without_a_valid_key(app, client, api_key, method, path, body,
                                                     headers):
    response = _call(client, method, path, body, headers)
    error_of(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Token")
    assert counts(app)["conversations"] == 0


@pytest.mark.parametrize("scheme", ["Token", "Bearer", "token"])
def test_token_and_bearer_schemes_are_accepted(client, api_key, scheme):
    start(client, {"Authorization": f"{scheme} {api_key}"}, {"site": "lb"})


def test_a_revoked_key_is_401_at_once(app, client, auth, runner):
    cid = start(client, auth, {"site": "lb", "conversation_id": "before-revoke"})["conversation_id"]

    result = runner.invoke(args=["clients", "revoke", "weni"])

    assert result.exit_code == 0, result.output
    for method, path, body in ROUTES:
        error_of(_call(client, method, path.replace("c-1", cid), body, auth), 401)


def test_revoking_an_unknown_client_is_an_error(runner):
    result = runner.invoke(args=["clients", "revoke", "nobody"])
    assert result.exit_code != 0
    assert "nobody" in result.output


def test_a_client_limited_to_another_site_is_403(app, client, auth):
    cid = start(client, auth, {"site": "lb", "conversation_id": "lb-only"})["conversation_id"]
    uganda_key = make_client(app, "ug-bot", sites=["ug"], namespace="weni")  # same chatbot
    uganda = {"Authorization": f"Token {uganda_key}"}
    before = counts(app)

    error_of(client.post("/v1/conversations", json=default_body(), headers=uganda), 403,
             "forbidden")
    for method, path, body in ROUTES[1:]:
        error_of(_call(client, method, path.replace("c-1", cid), body, uganda), 403, "forbidden")

    assert counts(app) == before
    start(client, uganda, {"site": "ug"})


def test_a_helpline_account_cannot_use_the_chatbot_routes(app, client):
    helpline = {"Authorization": f"Token {make_client(app, 'openchs', role='helpline')}"}
    error_of(client.post("/v1/conversations", json={"site": "lb"}, headers=helpline), 403)


# ---- the clients commands -------------------------------------------------------------

def test_clients_create_prints_the_key_alone_on_its_last_line_and_stores_only_its_hash(
        app, client, runner):
    result = runner.invoke(args=["clients", "create", "rapidpro-ke", "--site", "lb"])

    assert result.exit_code == 0, result.output
    key = result.output.strip().splitlines()[-1]
    assert key.startswith("hla_") and " " not in key and len(key) > 30
    with app.app_context():
        row = db.session.execute(
            db.select(ApiClient).where(ApiClient.name == "rapidpro-ke")).scalar_one()
        stored = {name: str(value) for name, value in vars(row).items()
                  if not name.startswith("_")}
    assert row.key_hash == hash_secret(key)
    assert len(row.key_hash) == 64 and int(row.key_hash, 16) >= 0
    assert not [name for name, value in stored.items() if key in value]
    assert row.sites == ["lb"]
    start(client, {"Authorization": f"Token {key}"}, {"site": "lb"})


def test_clients_create_refuses_a_duplicate_name(runner):
    assert runner.invoke(args=["clients", "create", "dup"]).exit_code == 0
    again = runner.invoke(args=["clients", "create", "dup"])
    assert again.exit_code != 0
    assert "dup" in again.output


def test_clients_list_never_prints_keys(app, runner, api_key):
    created = runner.invoke(args=["clients", "create", "second", "--read-text"])
    second_key = created.output.strip().splitlines()[-1]
    runner.invoke(args=["clients", "revoke", "second"])

    listing = runner.invoke(args=["clients", "list"])

    assert listing.exit_code == 0
    assert "weni" in listing.output and "second" in listing.output
    assert "revoked" in listing.output
    with app.app_context():
        hashes = [c.key_hash for c in db.session.execute(db.select(ApiClient)).scalars()]
    for secret in (api_key, second_key, *hashes):
        assert secret not in listing.output
    assert "hla_" not in listing.output
