"""The seed's URLs (``/open/api/...``) when the adapter is mounted under a path prefix."""

from __future__ import annotations

from flask import Flask
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.test import Client

from tests.compat.conftest import SEED_PASSWORD, SEED_USERNAME, make_account
from tests.compat.test_chat import SEED_CHAT


def test_script_name_prefix_is_honoured(app, client):
    make_account(app, sites=["lb"])
    response = client.post("/api/token/", json={"username": SEED_USERNAME,
                                                "password": SEED_PASSWORD},
                           environ_base={"SCRIPT_NAME": "/open"})
    assert response.status_code == 200


def test_the_seed_urls_work_under_open(app):
    make_account(app, sites=["lb"])
    outer = Flask("proxy-root")
    mounted = Client(DispatcherMiddleware(outer, {"/open": app}))
    token = mounted.post("/open/api/token/", json={"username": SEED_USERNAME,
                                                   "password": SEED_PASSWORD}).json["token"]
    headers = {"Authorization": f"Token {token}"}
    sent = mounted.post("/open/api/chat/", json=SEED_CHAT, headers=headers)
    assert sent.status_code == 201
    mounted.post("/open/api/chat/", json={**SEED_CHAT, "chat_message": "two"}, headers=headers)
    listed = mounted.get("/open/api/chat/?page_size=1", headers=headers)
    assert listed.status_code == 200
    assert listed.json["next"] == "http://localhost/open/api/chat/?page=2&page_size=1"
    closed = mounted.post("/open/api/chat/e32434511/close/", json={"chat_source": "WENI"},
                          headers=headers)
    assert closed.status_code == 200
    assert mounted.post("/api/token/", json={}).status_code == 404  # only under /open


def test_the_seed_urls_are_served_as_they_are_without_a_prefix_setting(app, client):
    """``/open/api/...`` at the adapter's own root (measured: 404 before)."""
    make_account(app, sites=["lb"])
    token = client.post("/open/api/token/", json={"username": SEED_USERNAME,
                                                  "password": SEED_PASSWORD}).json["token"]
    headers = {"Authorization": f"Token {token}"}

    sent = client.post("/open/api/chat/", json=SEED_CHAT, headers=headers)
    listed = client.get("/open/api/chat/", headers=headers)
    closed = client.post("/open/api/chat/e32434511/close", data='{"chat_source": "WENI"}',
                         content_type="application/x-www-form-urlencoded", headers=headers)

    assert sent.status_code == 201 and listed.json["count"] == 1
    assert closed.status_code == 200
    assert "/open/api/chat/" in client.get("/openapi.json").json["paths"]
