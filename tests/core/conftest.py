"""Core-suite helpers, and a check that runs with every core test: each status an app
answers on a documented route is in that route's OpenAPI entry."""

from __future__ import annotations

import re

import pytest
from flask import Flask, request
from sqlalchemy import func

from adapter import protocol
from adapter.extensions import db
from adapter.models import Conversation, Delivery, IdempotencyRecord, Message
from adapter.transactions import commit

CONTACT_UUID = "7f2c6e1a-0b1d-4c55-9a0e-3f1b5c9d2e11"
URN = "tel:+254711222333"
NAME = "Amina Wanjiru"


def default_body(**overrides) -> dict:
    """RapidPro's default Call Webhook body, routed to ``lb`` by its location result."""
    body = {
        "contact": {"uuid": CONTACT_UUID, "name": NAME, "urn": URN},
        "flow": {"uuid": "f0a4a8d2-4f0e-4c4e-8a51-2b5c34e6c001", "name": "Escalate"},
        "results": {
            "location": {"value": "Nairobi", "category": "Nairobi"},
            "message": {"value": "I need to talk to someone", "category": "All Responses"},
        },
    }
    body.update(overrides)
    return body


def rows(app: Flask, model) -> int:
    with app.app_context():
        return db.session.execute(db.select(func.count()).select_from(model)).scalar_one()


def counts(app: Flask) -> dict[str, int]:
    """Rows in the tables a repeated request must not grow."""
    return {model.__tablename__: rows(app, model)
            for model in (Conversation, Message, Delivery, IdempotencyRecord)}


def start(client, auth, body=None, headers=None, expect=201) -> dict:
    response = client.post("/v1/conversations", json=body or default_body(),
                           headers={**auth, **(headers or {})})
    assert response.status_code == expect, response.json
    return response.json


def counsellor_message(app: Flask, conversation_id: str, text: str = "Hello, I am here",
                       message_id: str = "hl-msg-1", counsellor: str = "counsellor-7") -> str:
    """A counsellor reply, as the helpline side of the protocol accepts it; returns our id."""
    with app.app_context():
        conversation = db.session.get(Conversation, conversation_id) or db.session.execute(
            db.select(Conversation).where(Conversation.external_id == conversation_id)
        ).scalar_one()
        message, _ = protocol.accept_counsellor_message(
            conversation, text=text, message_id=message_id, counsellor=counsellor,
            attachments=[], actor="helpline:lb")
        commit()
        return message.id


# ---- every observed status is documented --------------------------------------------

def openapi_path(rule: str) -> str:
    """``/v1/conversations/<path:conversation_id>`` → ``/v1/conversations/{conversation_id}``."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def record_statuses(app: Flask) -> list[tuple[str, str, int]]:
    """Note (route, method, status) of every answer ``app`` gives."""
    seen: list[tuple[str, str, int]] = []

    @app.after_request
    def _note(response):
        if request.url_rule is not None:
            seen.append((openapi_path(request.url_rule.rule), request.method.lower(),
                         response.status_code))
        return response

    return seen


def undocumented(app: Flask, seen) -> list[tuple[str, str, int]]:
    paths = app.test_client().get("/openapi.json").json["paths"]
    missing = []
    for path, method, status in seen:
        if path not in paths:
            continue  # not an API route (the docs UI, the OpenAPI document itself)
        operation = paths[path].get(method)
        if operation is None or str(status) not in operation["responses"]:
            missing.append((path, method, status))
    return sorted(set(missing))


@pytest.fixture
def app_factory(app_factory):
    """The shared factory, each app checked at teardown: every answer it gave is documented."""
    made = []

    def make(*args, **kwargs):
        app = app_factory(*args, **kwargs)
        made.append((app, record_statuses(app)))
        return app

    yield make
    for app, seen in made:
        assert undocumented(app, seen) == [], "statuses answered but not in /openapi.json"
