"""201 only once a chat is durable: a database that will not write means 503, never 201."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from adapter import create_app
from adapter.extensions import db
from adapter.models import Conversation, Delivery, Message
from tests.compat.test_chat import SEED_CHAT
from tests.support import loopback_plugin


@pytest.mark.parametrize("db_backend", ["postgresql"])  # read-only sessions: PostgreSQL's
def test_a_chat_the_database_will_not_commit_is_503_and_leaves_nothing(app, client, weni,
                                                                        db_backend):
    read_only = create_app({**app.config, "SQLALCHEMY_ENGINE_OPTIONS": {
        "hide_parameters": True,
        "connect_args": {"options": "-c default_transaction_read_only=on"}}},
        plugins=(loopback_plugin,))
    try:
        response = read_only.test_client().post("/api/chat/", json=SEED_CHAT, headers=weni)
        assert response.status_code == 503
        assert response.json["code"] == "unavailable"
        assert int(response.headers["Retry-After"]) > 0
        with read_only.app_context():
            assert db.session.execute(text("SHOW default_transaction_read_only")).scalar() \
                == "on"
    finally:
        with read_only.app_context():
            db.engine.dispose()
    with app.app_context():
        for model in (Conversation, Message, Delivery):
            assert db.session.execute(db.select(db.func.count()).select_from(model)) \
                .scalar_one() == 0
    # The same chat once the database writes again: accepted, once.
    assert client.post("/api/chat/", json=SEED_CHAT, headers=weni).status_code == 201
