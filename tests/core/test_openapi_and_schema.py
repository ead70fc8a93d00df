"""The OpenAPI document covers every route and status; the migrations make the models' schema."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from adapter import create_app
from adapter.database_upgrade import MIGRATIONS, upgrade_database
from adapter.extensions import db
from tests.support import loopback_plugin

# /console: the operations console's HTML pages (adapter/console, docs/operations.md),
# for people with a session cookie, not part of the JSON API.
UNDOCUMENTED_RULES = ("/static/", "/openapi.json", "/docs", "/console")

# What the tests of this suite see each route answer (see test_errors, test_auth, ...).
OBSERVED = {
    ("/v1/conversations", "post"): {200, 201, 400, 401, 403, 413, 415, 422, 503},
    ("/v1/conversations/{conversation_id}/messages", "post"):
        {200, 202, 400, 401, 403, 404, 409, 413, 415, 422, 503},
    ("/v1/conversations/{conversation_id}/close", "post"): {200, 400, 401, 403, 404, 503},
    ("/v1/conversations/{conversation_id}/acks", "post"): {200, 400, 401, 403, 404, 503},
    ("/v1/conversations/{conversation_id}", "get"): {200, 400, 401, 403, 404, 503},
    # The weni-ticketer dialect (tests/dialects/test_weni_ticketer_http.py).
    ("/v1/tickets", "post"): {201, 400, 401, 403, 409, 415, 422},
    ("/v1/tickets/{external_id}/messages", "post"): {200, 400, 401, 404, 409},
    ("/v1/tickets/{external_id}/close", "post"): {200, 400, 409},
    ("/v1/tickets/{external_id}/reopen", "post"): {200, 404, 422},
    ("/v1/tickets/{external_id}/history", "post"): {200, 400, 404},
    ("/healthz", "get"): {200},
    ("/readyz", "get"): {200, 503},
}


@pytest.fixture
def spec(client) -> dict:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return response.json


def test_every_route_is_in_the_openapi_document(app, spec):
    from .conftest import openapi_path

    missing = []
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(UNDOCUMENTED_RULES):
            continue
        path = openapi_path(rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            if method.lower() not in spec["paths"].get(path, {}):
                missing.append((path, method))
    assert missing == []


@pytest.mark.parametrize(("route", "statuses"), sorted(OBSERVED.items()))
def test_each_status_a_route_answers_is_documented(spec, route, statuses):
    path, method = route
    documented = {int(code) for code in spec["paths"][path][method]["responses"]
                  if code.isdigit()}
    assert statuses <= documented


def test_error_answers_use_the_error_schema_and_routes_need_a_token(spec):
    for path, operations in spec["paths"].items():
        if not path.startswith("/v1/conversations"):
            continue
        for operation in operations.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            assert operation.get("security") == [{"Token": []}], path
            for code, response in operation["responses"].items():
                if code.isdigit() and int(code) >= 400:
                    if "$ref" in response:  # a shared response: flask-smorest's own
                        response = spec["components"]["responses"][
                            response["$ref"].rsplit("/", 1)[-1]]
                    schema = response["content"]["application/json"]["schema"]
                    name = schema["$ref"].rsplit("/", 1)[-1]
                    # The Error shape, or one that adds to it (a refused attachment's 422
                    # also carries the message that was accepted).
                    assert set(spec["components"]["schemas"]["Error"]["properties"]) <= set(
                        spec["components"]["schemas"][name]["properties"]), (path, code)
                    assert name in ("Error", "AttachmentsRefused"), (path, code)
    assert spec["components"]["securitySchemes"]["Token"]["in"] == "header"


def test_ticket_routes_document_the_contracts_error_envelope(spec):
    """The weni-ticketer routes answer errors as the generic ticketer contract does."""
    error = spec["components"]["schemas"]["TicketError"]
    assert set(error["properties"]) == {"error", "message", "details"}
    for path, operations in spec["paths"].items():
        if not path.startswith("/v1/tickets"):
            continue
        for operation in operations.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            assert operation.get("security") == [{"Token": []}], path
            for code, response in operation["responses"].items():
                if code.isdigit() and int(code) >= 400:
                    assert "$ref" not in response, (path, code)  # not the shared Error
                    schema = response["content"]["application/json"]["schema"]
                    assert schema["$ref"].endswith("/TicketError"), (path, code)


def test_the_docs_ui_answers(client):
    response = client.get("/docs")
    assert response.status_code == 200
    assert "swagger" in response.get_data(as_text=True).lower()


# ---- migrations ------------------------------------------------------------------------

@pytest.fixture
def migrated_app(app, db_backend, tmp_path, countries_dir):
    """An app whose database schema was made by the Alembic migrations alone."""
    if db_backend == "postgresql":
        yield app  # the session's PostgreSQL database is made by the migrations
        return
    fresh = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'migrated.sqlite3'}",
                        "COUNTRIES_DIR": str(countries_dir), "SECRET_KEY": "t",
                        "LOG_LEVEL": "WARNING"}, plugins=(loopback_plugin,))
    upgrade_database(fresh)
    yield fresh
    with fresh.app_context():
        db.engine.dispose()


def test_the_migrations_make_exactly_the_models_schema(migrated_app):
    with migrated_app.app_context(), db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True,
                                                               "render_as_batch": True})
        differences = compare_metadata(context, db.metadata)
        current = context.get_current_revision()

    assert differences == []
    assert current == ScriptDirectory(str(MIGRATIONS)).get_current_head()


def test_every_replaying_write_documents_its_idempotency_key(client):
    """Each POST that answers a repeat with its first answer says which header makes it
    one (the flows and any client read it from the document)."""
    spec = client.get("/openapi.json").json
    writes = [(path, op) for path, item in spec["paths"].items()
              for method, op in item.items() if method == "post"
              and path not in ("/api/token/", "/open/api/token/")
              and not path.endswith("/token/")]
    assert len(writes) >= 8
    for path, op in writes:
        names = {p["name"] for p in op.get("parameters", []) if p["in"] == "header"}
        assert "Idempotency-Key" in names, path
