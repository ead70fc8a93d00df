"""Every error status, in the one JSON shape ``{"code", "message", "errors"}``."""

from __future__ import annotations

import json
import sqlite3

import psycopg.errors as pg_errors
import pytest
from sqlalchemy import create_engine, exc, text

from adapter import create_app
from adapter.errors import database_unavailable
from adapter.extensions import db
from tests.conftest import make_client
from tests.support import loopback_plugin

from .conftest import counts, default_body, record_statuses, start, undocumented


def error_of(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, (response.status_code, response.get_data(True))
    body = response.json
    assert set(body) == {"code", "message", "errors"}, body
    assert isinstance(body["code"], str) and body["code"]
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["errors"], dict)
    if code is not None:
        assert body["code"] == code, body
    return body


@pytest.fixture
def conversation_id(client, auth) -> str:
    return start(client, auth, {"conversation_id": "conv-errors", "site": "lb",
                                "contact": {"uuid": "c-err"}})["conversation_id"]


# ---- 400 ----------------------------------------------------------------------------

def test_malformed_json_is_400(client, auth):
    response = client.post("/v1/conversations", data='{"contact": ',
                           headers={**auth, "Content-Type": "application/json"})
    body = error_of(response, 400, "malformed_json")
    assert "body" in body["errors"]


@pytest.mark.parametrize("payload", ["[]", '"text"', "42"])
def test_json_that_is_not_an_object_is_400(client, auth, payload):
    response = client.post("/v1/conversations", data=payload,
                           headers={**auth, "Content-Type": "application/json"})
    error_of(response, 400, "malformed_json")


@pytest.mark.parametrize(("body", "field"), [
    ({"conversation_id": "has spaces in it", "site": "lb"}, "conversation_id"),
    ({"site": "lb", "surprise": 1}, "surprise"),
    ({"site": "lb", "text": 5}, "text"),
    ({"site": "lb", "attachments": ["not a url"]}, "attachments.0"),
    ({"site": "lb", "contact": "not an object"}, "contact"),
    ({"site": "lb", "text": "x" * 10_001}, "text"),
])
def test_invalid_start_fields_are_400_naming_the_field(app, client, auth, body, field):
    before = counts(app)
    response = client.post("/v1/conversations", json=body, headers=auth)
    out = error_of(response, 400, "invalid_request")
    assert field in out["errors"]
    assert field in out["message"]
    assert counts(app) == before


def test_a_message_without_text_or_attachments_is_400(client, auth, conversation_id):
    response = client.post(f"/v1/conversations/{conversation_id}/messages",
                           json={"message_id": "m-empty"}, headers=auth)
    assert "text" in error_of(response, 400)["errors"]


def test_an_ack_with_an_unknown_status_is_400(client, auth, conversation_id):
    response = client.post(f"/v1/conversations/{conversation_id}/acks",
                           json={"message_id": "m", "status": "seen"}, headers=auth)
    assert "status" in error_of(response, 400, "invalid_request")["errors"]


def test_a_close_with_an_unknown_reason_is_400(client, auth, conversation_id):
    response = client.post(f"/v1/conversations/{conversation_id}/close",
                           json={"reason": "bored"}, headers=auth)
    assert "reason" in error_of(response, 400, "invalid_request")["errors"]


def test_a_bad_query_parameter_is_400(client, auth, conversation_id):
    response = client.get(f"/v1/conversations/{conversation_id}?include_text=perhaps",
                          headers=auth)
    assert "include_text" in error_of(response, 400, "invalid_request")["errors"]


def test_an_overlong_idempotency_key_is_400(client, auth):
    response = client.post("/v1/conversations", json={"site": "lb"},
                           headers={**auth, "Idempotency-Key": "k" * 256})
    assert "Idempotency-Key" in error_of(response, 400)["errors"]


# ---- 401 and 403 are in test_auth.py; 404, 409 -----------------------------------------

@pytest.mark.parametrize(("method", "suffix", "body"), [
    ("post", "/messages", {"message_id": "m", "text": "hi"}),
    ("post", "/close", {}),
    ("post", "/acks", {"message_id": "m", "status": "read"}),
    ("get", "", None),
])
def test_an_unknown_conversation_is_404(client, auth, method, suffix, body):
    response = getattr(client, method)(f"/v1/conversations/no-such-conversation{suffix}",
                                       json=body, headers=auth)
    error_of(response, 404, "conversation_not_found")


def test_an_ack_for_an_unknown_message_is_404(client, auth, conversation_id):
    response = client.post(f"/v1/conversations/{conversation_id}/acks",
                           json={"message_id": "never-sent", "status": "read"}, headers=auth)
    assert "message_id" in error_of(response, 404, "message_not_found")["errors"]


def test_a_message_to_a_closed_conversation_is_409(app, client, auth, conversation_id):
    closed = client.post(f"/v1/conversations/{conversation_id}/close", headers=auth)
    assert closed.status_code == 200
    before = counts(app)

    response = client.post(f"/v1/conversations/{conversation_id}/messages",
                           json={"message_id": "late", "text": "are you there"}, headers=auth)

    error_of(response, 409, "conversation_closed")
    assert counts(app) == before


# ---- 413, 415 ----------------------------------------------------------------------

def test_a_body_over_64_kib_is_413(app, client, auth):
    assert app.config["MAX_CONTENT_LENGTH"] == 64 * 1024
    payload = json.dumps({"site": "lb", "results": {"pad": "x" * (64 * 1024)}})

    response = client.post("/v1/conversations", data=payload,
                           headers={**auth, "Content-Type": "application/json"})

    error_of(response, 413, "too_large")
    assert counts(app)["conversations"] == 0


def test_a_body_just_under_the_limit_is_read(client, auth):
    payload = json.dumps({"site": "lb", "results": {"pad": "x" * (60 * 1024)}})
    response = client.post("/v1/conversations", data=payload,
                           headers={**auth, "Content-Type": "application/json"})
    assert response.status_code == 201


def test_the_limit_is_configurable(app_factory):
    app = app_factory(MAX_CONTENT_LENGTH=1024)
    auth = {"Authorization": f"Token {make_client(app)}"}
    response = app.test_client().post("/v1/conversations",
                                      json={"site": "lb", "text": "x" * 2000}, headers=auth)
    error_of(response, 413, "too_large")


@pytest.mark.parametrize(("data", "content_type"), [
    ("site=lb", "application/x-www-form-urlencoded"),
    ('{"site": "lb"}', "text/plain"),
    ("<site>lb</site>", "application/xml"),
])
def test_a_body_that_is_not_json_is_415(app, client, auth, data, content_type):
    response = client.post("/v1/conversations", data=data,
                           headers={**auth, "Content-Type": content_type})
    error_of(response, 415, "unsupported_media_type")
    assert counts(app)["conversations"] == 0


# ---- 422 ----------------------------------------------------------------------------

def test_an_unroutable_start_is_422_naming_what_was_tried(app, client, auth):
    body = default_body(contact={"uuid": "c-x", "urn": "tel:+1555000111"},
                        results={"location": {"value": "Atlantis", "category": "Other"}})

    out = error_of(client.post("/v1/conversations", json=body, headers=auth), 422, "unroutable")

    assert "site" in out["errors"]
    assert "Atlantis" in out["message"]
    assert counts(app)["conversations"] == 0


def test_an_unknown_explicit_site_is_422(client, auth):
    error_of(client.post("/v1/conversations", json={"site": "zz"}, headers=auth), 422,
             "unroutable")


def test_an_idempotency_key_reused_for_another_body_is_422(app, client, auth):
    headers = {**auth, "Idempotency-Key": "idem-reuse"}
    assert client.post("/v1/conversations", json={"site": "lb", "text": "one"},
                       headers=headers).status_code == 201
    before = counts(app)

    response = client.post("/v1/conversations", json={"site": "lb", "text": "two"},
                           headers=headers)

    assert "Idempotency-Key" in error_of(response, 422, "idempotency_key_reused")["errors"]
    assert counts(app) == before


# ---- 503: nothing is accepted when the database cannot make it durable ----------------

UNREACHABLE = {
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:1/x?connect_timeout=2",
    "sqlite": "sqlite:////nonexistent-directory/for/sure/adapter.sqlite3",
}


@pytest.mark.parametrize("backend", sorted(UNREACHABLE))
def test_an_unreachable_database_is_503_with_retry_after_on_every_route(
        backend, countries_dir, redis_url):
    app = create_app({"SQLALCHEMY_DATABASE_URI": UNREACHABLE[backend], "REDIS_URL": redis_url,
                      "COUNTRIES_DIR": str(countries_dir), "SECRET_KEY": "t", "TESTING": True},
                     plugins=(loopback_plugin,))
    seen = record_statuses(app)
    client = app.test_client()
    auth = {"Authorization": "Token hla_whatever-key-it-is"}
    calls = [
        ("post", "/v1/conversations", default_body()),
        ("post", "/v1/conversations/c-1/messages", {"message_id": "m", "text": "hi"}),
        ("post", "/v1/conversations/c-1/close", {}),
        ("post", "/v1/conversations/c-1/acks", {"message_id": "m", "status": "read"}),
        ("get", "/v1/conversations/c-1", None),
    ]
    for method, path, body in calls:
        response = getattr(client, method)(path, json=body, headers=auth)
        error_of(response, 503, "unavailable")
        assert int(response.headers["Retry-After"]) > 0
    assert client.get("/readyz").status_code == 503
    assert undocumented(app, seen) == []
    with app.app_context():
        db.engine.dispose()


@pytest.mark.parametrize("db_backend", ["postgresql"])  # read-only sessions: PostgreSQL's
def test_a_commit_the_database_refuses_is_503_and_leaves_nothing(app_factory, db_backend):
    """The database answers reads but will not write: the start is never 2xx."""
    writable = app_factory()
    auth = {"Authorization": f"Token {make_client(writable)}"}
    read_only = create_app({**writable.config, "SQLALCHEMY_ENGINE_OPTIONS": {
        "hide_parameters": True,
        "connect_args": {"options": "-c default_transaction_read_only=on"}}},
        plugins=(loopback_plugin,))
    seen = record_statuses(read_only)
    with read_only.app_context():
        assert db.session.execute(text("SHOW default_transaction_read_only")).scalar() == "on"
        db.session.rollback()

    response = read_only.test_client().post("/v1/conversations", json=default_body(),
                                            headers=auth)

    error_of(response, 503, "unavailable")
    assert int(response.headers["Retry-After"]) > 0
    assert counts(writable) == {"conversations": 0, "messages": 0, "deliveries": 0,
                                "idempotency_records": 0}
    assert undocumented(read_only, seen) == []
    with read_only.app_context():
        db.engine.dispose()


@pytest.mark.parametrize("db_backend", ["postgresql"])  # the server's own connections
def test_a_connection_cut_under_a_running_app_is_503_then_it_recovers(app_factory, db_backend):
    """Every connection of the app killed by the server (a restart, a failover): the
    next request is a 503 with Retry-After, never a 2xx, and the one after is served."""
    app = app_factory()
    client = app.test_client()
    auth = {"Authorization": f"Token {make_client(app)}"}
    start(client, auth, {"site": "lb", "conversation_id": "cut-0"})  # a pooled connection
    engine = create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
    try:
        with engine.connect() as conn:
            killed = conn.execute(text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()")).scalar()
    finally:
        engine.dispose()
    assert killed >= 1

    cut = client.post("/v1/conversations", json={"site": "lb", "conversation_id": "cut-1"},
                      headers=auth)

    error_of(cut, 503, "unavailable")
    assert int(cut.headers["Retry-After"]) > 0
    assert counts(app)["conversations"] == 1
    start(client, auth, {"site": "lb", "conversation_id": "cut-1"})


@pytest.mark.parametrize("db_backend", ["postgresql"])  # SQLite stores an over-long value
def test_a_value_the_database_refuses_is_a_500_not_a_503(app_factory, db_backend, monkeypatch):
    """With a length check missing, PostgreSQL refuses the value (a DataError): retrying
    cannot help, so it is our bug, a 500 without Retry-After; never "unavailable"."""
    from adapter.dialects.rapidpro_webhook import wire as inbound

    writable = app_factory()
    auth = {"Authorization": f"Token {make_client(writable)}"}
    app = create_app(dict(writable.config), plugins=(loopback_plugin,))  # 500 is undocumented
    monkeypatch.setitem(inbound.MAX_LENGTH, "risk", 10_000)  # the check taken away
    body = default_body(site="lb", conversation_id="too-risky")
    body["results"]["risk"] = {"value": "r" * 65, "category": "High"}

    response = app.test_client().post("/v1/conversations", json=body, headers=auth)

    error_of(response, 500, "internal_error")
    assert "Retry-After" not in response.headers
    assert counts(writable)["conversations"] == 0
    with app.app_context():
        db.engine.dispose()


def _wrapped(kind, orig):
    return kind("INSERT ...", {}, orig)


@pytest.mark.parametrize(("error", "unavailable"), [
    (_wrapped(exc.OperationalError, sqlite3.OperationalError("database is locked")), True),
    (_wrapped(exc.OperationalError, sqlite3.OperationalError("unable to open database file")),
     True),
    (_wrapped(exc.OperationalError, pg_errors.AdminShutdown()), True),
    (_wrapped(exc.OperationalError, pg_errors.QueryCanceled()), True),  # statement timeout
    (_wrapped(exc.InternalError, pg_errors.ReadOnlySqlTransaction()), True),
    (_wrapped(exc.InterfaceError, pg_errors.InterfaceError()), True),
    (exc.DisconnectionError(), True),
    (exc.TimeoutError(), True),  # the pool had no connection to give
    (_wrapped(exc.DataError, pg_errors.StringDataRightTruncation()), False),
    (_wrapped(exc.DataError, pg_errors.DataError()), False),  # a NUL in text
    (_wrapped(exc.DataError, pg_errors.UntranslatableCharacter()), False),
    (_wrapped(exc.IntegrityError, pg_errors.UniqueViolation()), False),
    (_wrapped(exc.IntegrityError, sqlite3.IntegrityError("UNIQUE constraint failed")), False),
    (_wrapped(exc.OperationalError, pg_errors.ProgramLimitExceeded()), False),
    (exc.StatementError("bind failed", "INSERT ...", {}, ValueError("x")), False),
])
def test_only_an_outage_is_taken_for_unavailable(error, unavailable):
    assert database_unavailable(error) is unavailable


# ---- 429 ----------------------------------------------------------------------------

def test_a_client_past_its_rate_is_429_with_retry_after(app_factory):
    app = app_factory(RATE_LIMIT_PER_MINUTE=1, RATE_LIMIT_BURST=1)
    client = app.test_client()
    auth = {"Authorization": f"Token {make_client(app)}"}

    responses = [client.post("/v1/conversations", json={"site": "lb"}, headers=auth)
                 for _ in range(3)]

    statuses = [r.status_code for r in responses]
    assert statuses[0] == 201 and statuses[-1] == 429, statuses
    limited = responses[-1]
    error_of(limited, 429, "rate_limited")
    assert int(limited.headers["Retry-After"]) >= 1
    assert counts(app)["conversations"] == statuses.count(201)
