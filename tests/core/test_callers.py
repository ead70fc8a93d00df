"""Credentials remembered per process: no database read for a known key, and still
refused at once when revoked (the revocation signal in Redis), or within the cache's
bound when changed behind the adapter's back."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event

from adapter.auth import issue_token
from adapter.callers import MAX_ENTRIES, Caller, cache_for, forget_all
from adapter.extensions import db
from adapter.models import ApiClient, utcnow
from tests.conftest import make_client
from tests.support.waiting import wait_until

from .conftest import start
from .test_errors import error_of

UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"


@contextmanager
def statements(app) -> Iterator[list[str]]:
    """The SQL statements ``app`` sends meanwhile (observed, not altered)."""
    seen: list[str] = []

    def note(_conn, _cursor, statement, *_args):
        seen.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", note)


def reads_clients(seen: list[str]) -> bool:
    return any("FROM api_clients" in statement for statement in seen)


def message(client, headers, conversation_id: str, n: int):
    return client.post(f"/v1/conversations/{conversation_id}/messages",
                       json={"message_id": f"m-{n}", "text": "hello"}, headers=headers)


def _revoke_in_the_database(app, name: str) -> None:
    """Behind the adapter's back: no ``clients revoke``, so no signal."""
    with app.app_context():
        db.session.execute(db.update(ApiClient).where(ApiClient.name == name)
                           .values(revoked_at=utcnow()))
        db.session.commit()


def test_a_known_key_is_not_read_from_the_database_again(app, client, auth):
    cid = start(client, auth, {"site": "lb", "conversation_id": "remembered"})["conversation_id"]

    with statements(app) as seen:
        assert message(client, auth, cid, 1).status_code == 202

    assert not reads_clients(seen), seen
    assert any("INSERT INTO messages" in statement for statement in seen)


def test_a_remembered_key_revoked_through_the_cli_is_refused_on_the_next_request(
        app, client, auth, runner):
    cid = start(client, auth, {"site": "lb", "conversation_id": "revoked"})["conversation_id"]
    with statements(app) as seen:
        assert message(client, auth, cid, 1).status_code == 202
    assert not reads_clients(seen)  # remembered, so only the signal can make it forget

    result = runner.invoke(args=["clients", "revoke", "weni"])

    assert result.exit_code == 0, result.output
    assert result.output.strip() == "revoked 'weni'"
    error_of(message(client, auth, cid, 2), 401, "unauthorized")


def test_other_keys_still_work_after_a_revocation(app, client, auth, runner):
    other = {"Authorization": f"Token {make_client(app, 'other-bot')}"}
    cid = start(client, other, {"site": "lb", "conversation_id": "others"})["conversation_id"]

    assert runner.invoke(args=["clients", "revoke", "weni"]).exit_code == 0

    assert message(client, other, cid, 1).status_code == 202
    error_of(message(client, auth, cid, 2), 401)


def test_without_redis_every_request_reads_the_database_and_revocation_is_immediate(
        app_factory):
    app = app_factory(REDIS_URL=UNREACHABLE_REDIS, RATE_LIMIT_PER_MINUTE=0)
    client = app.test_client()
    auth = {"Authorization": f"Token {make_client(app)}"}
    cid = start(client, auth, {"site": "lb", "conversation_id": "no-redis"})["conversation_id"]

    with statements(app) as seen:
        assert message(client, auth, cid, 1).status_code == 202
    assert reads_clients(seen)

    _revoke_in_the_database(app, "weni")
    error_of(message(client, auth, cid, 2), 401)


def test_revoking_while_redis_is_down_says_how_long_keys_may_still_work(app_factory):
    app = app_factory(REDIS_URL=UNREACHABLE_REDIS, CREDENTIAL_CACHE_SECONDS=30)
    make_client(app)

    result = app.test_cli_runner().invoke(args=["clients", "revoke", "weni"])

    assert result.exit_code == 0, result.output
    assert "Redis is unreachable" in result.output and "30 s" in result.output
    with app.app_context():
        assert db.session.execute(db.select(ApiClient.revoked_at)).scalar_one() is not None


def test_a_change_behind_the_adapters_back_is_seen_within_the_cache_bound(app_factory):
    app = app_factory(CREDENTIAL_CACHE_SECONDS=2)
    client = app.test_client()
    auth = {"Authorization": f"Token {make_client(app)}"}
    cid = start(client, auth, {"site": "lb", "conversation_id": "bound"})["conversation_id"]

    _revoke_in_the_database(app, "weni")

    assert message(client, auth, cid, 1).status_code == 202  # remembered: no signal came
    wait_until(lambda: message(client, auth, cid, 2).status_code == 401, timeout=8,
               what="the remembered key to expire from the cache")


def test_no_remembering_when_turned_off(app_factory):
    app = app_factory(CREDENTIAL_CACHE_SECONDS=0)
    client = app.test_client()
    auth = {"Authorization": f"Token {make_client(app)}"}
    cid = start(client, auth, {"site": "lb", "conversation_id": "off"})["conversation_id"]

    _revoke_in_the_database(app, "weni")

    error_of(message(client, auth, cid, 1), 401)


def test_a_remembered_token_stops_working_when_it_expires(app, client, auth):
    cid = start(client, auth, {"site": "lb", "conversation_id": "token"})["conversation_id"]
    with app.app_context():
        weni = db.session.execute(db.select(ApiClient)).scalar_one()
        token = issue_token(client=weni, ttl=2)
        db.session.commit()
    headers = {"Authorization": f"Token {token}"}

    with statements(app) as seen:
        assert message(client, headers, cid, 1).status_code == 202
        assert message(client, headers, cid, 2).status_code == 202
    assert sum("FROM api_tokens" in statement for statement in seen) == 1  # then remembered

    wait_until(lambda: message(client, headers, cid, 3).status_code == 401, timeout=8,
               what="the token to expire")


def test_a_lookup_that_raced_a_revocation_is_forgotten(app):
    """Read before the revocation, remembered after its signal: the next lookup drops it."""
    with app.app_context():
        cache = cache_for(app)
        assert cache.current()
        caller = Caller(1, "weni", "chatbot", None, False)
        # the database read happens here, then the revocation commits and signals:
        assert forget_all(app)
        cache.remember("digest", caller, None)

        assert cache.current()
        assert cache.get("digest", utcnow()) is None


def test_the_cache_stays_bounded(app):
    with app.app_context():
        cache = cache_for(app)
        assert cache.current()
        caller = Caller(1, "weni", "chatbot", ("lb",), False)
        for n in range(MAX_ENTRIES + 10):
            cache.remember(f"digest-{n}", caller, None)

        assert len(cache._entries) <= MAX_ENTRIES
        assert cache.get(f"digest-{MAX_ENTRIES + 9}", utcnow()).caller == caller
