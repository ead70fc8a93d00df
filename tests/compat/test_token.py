"""``POST /api/token/``: passwords for time-bound, revocable tokens."""

from __future__ import annotations

from tests.compat.conftest import SEED_PASSWORD, SEED_USERNAME, login, make_account


def test_seed_credentials_get_a_token_that_opens_the_chat_list(app, client):
    make_account(app, sites=["lb"])
    response = client.post("/api/token/", json={"username": SEED_USERNAME,
                                                "password": SEED_PASSWORD})
    assert response.status_code == 200
    token = response.json["token"]
    assert len(token) == 40 and response.json["expires_at"]
    listed = client.get("/api/chat/", headers={"Authorization": f"Token {token}"})
    assert listed.status_code == 200


def test_wrong_password_and_unknown_user_are_refused_alike(app, client):
    make_account(app)
    wrong = client.post("/api/token/", json={"username": SEED_USERNAME, "password": "nope"})
    unknown = client.post("/api/token/", json={"username": "nobody", "password": "nope"})
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert response.json["code"] == "invalid_credentials"
        assert "token" not in response.json
    assert wrong.json == unknown.json


def test_missing_fields_are_named(client):
    response = client.post("/api/token/", json={"username": "someone"})
    assert response.status_code == 400
    assert set(response.json["errors"]) == {"password"}


def test_an_account_without_a_password_cannot_log_in(app, client):
    from tests.conftest import make_client

    make_client(app, name="key-only")
    response = client.post("/api/token/", json={"username": "key-only", "password": ""})
    assert response.status_code == 400  # an empty password is malformed
    response = client.post("/api/token/", json={"username": "key-only", "password": "x"})
    assert response.status_code == 401


def test_an_expired_token_is_refused(app_factory):
    app = app_factory(API_TOKEN_TTL_SECONDS=0)
    make_account(app)
    client = app.test_client()
    headers = login(client)
    response = client.get("/api/chat/", headers=headers)
    assert response.status_code == 401


def test_revoking_the_account_revokes_its_tokens(app, client, runner):
    make_account(app)
    headers = login(client)
    assert client.get("/api/chat/", headers=headers).status_code == 200
    result = runner.invoke(args=["clients", "revoke", SEED_USERNAME])
    assert result.exit_code == 0, result.output
    assert client.get("/api/chat/", headers=headers).status_code == 401
    again = client.post("/api/token/", json={"username": SEED_USERNAME,
                                             "password": SEED_PASSWORD})
    assert again.status_code == 401


def test_an_account_made_by_the_cli_logs_in(client, runner):
    result = runner.invoke(args=["clients", "create", "weni-ke", "--password", "--site", "lb"],
                           env={"HELPLINE_ADAPTER_CLIENT_PASSWORD": "s3cret-pass"})
    assert result.exit_code == 0, result.output
    assert "s3cret-pass" not in result.output
    headers = login(client, "weni-ke", "s3cret-pass")
    assert client.get("/api/chat/", headers=headers).status_code == 200
