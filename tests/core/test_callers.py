"""Credentials remembered per process: no database read for a known key; forgotten
when revoked (at once in the revoking process, through Redis pub/sub in the others),
when the subscription is lost, and within the cache's bound when changed behind the
adapter's back."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from redis import Redis
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
CALLER = Caller(1, "weni", "chatbot", ("lb",), False, "weni")


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


def listening(app) -> None:
    """Wait for the app's revocation listener (started by its first lookup) to subscribe."""
    with app.app_context():
        cache = cache_for(app)
        cache.version()
    wait_until(lambda: cache.live, timeout=10, what="the revocation listener to subscribe")


def remembered(app, client, headers, conversation_id: str) -> None:
    """Make sure ``headers``' credential is remembered: listening, then one lookup."""
    listening(app)
    assert message(client, headers, conversation_id, 0).status_code in (200, 202)
    with statements(app) as seen:
        assert message(client, headers, conversation_id, 0).status_code == 200  # a repeat
    assert not reads_clients(seen), seen


def reads_clients(seen: list[str]) -> bool:
    return any("FROM api_clients" in statement for statement in seen)


def message(client, headers, conversation_id: str, n: int):
    return client.post(f"/v1/conversations/{conversation_id}/messages",
                       json={"message_id": f"m-{n}", "text": "hello"}, headers=headers)


def _app_with_conversation(app_factory, conversation_id: str, **config):
    """An app made with ``config``, a chatbot key for it, and a conversation started."""
    app = app_factory(**config)
    client = app.test_client()
    auth = {"Authorization": f"Token {make_client(app)}"}
    cid = start(client, auth, {"site": "lb", "conversation_id": conversation_id})[
        "conversation_id"]
    return app, client, auth, cid


def _revoke_in_the_database(app, name: str) -> None:
    """Behind the adapter's back: no ``clients revoke``, so no signal."""
    with app.app_context():
        db.session.execute(db.update(ApiClient).where(ApiClient.name == name)
                           .values(revoked_at=utcnow()))
        db.session.commit()


def test_a_known_key_is_not_read_from_the_database_again(app, client, auth):
    cid = start(client, auth, {"site": "lb", "conversation_id": "remembered"})["conversation_id"]
    listening(app)
    # A key of the same namespace that this process has never seen: the start's own key
    # may have been remembered already, if the listener subscribed before its lookup ended.
    fresh = {"Authorization": f"Token {make_client(app, 'weni-rotated', namespace='weni')}"}
    with statements(app) as first:
        assert message(client, fresh, cid, 1).status_code == 202

    with statements(app) as seen:
        assert message(client, fresh, cid, 2).status_code == 202

    assert reads_clients(first)
    assert not reads_clients(seen), seen
    assert any("INSERT INTO messages" in statement for statement in seen)


def test_a_remembered_key_revoked_through_the_cli_is_refused_on_the_next_request(
        app, client, auth, runner):
    cid = start(client, auth, {"site": "lb", "conversation_id": "revoked"})["conversation_id"]
    remembered(app, client, auth, cid)

    result = runner.invoke(args=["clients", "revoke", "weni"])

    assert result.exit_code == 0, result.output
    assert result.output.strip() == "revoked 'weni'"
    error_of(message(client, auth, cid, 2), 401, "unauthorized")


def test_other_keys_still_work_after_a_revocation(app, client, auth, runner):
    other = {"Authorization": f"Token {make_client(app, 'other-bot')}"}
    cid = start(client, other, {"site": "lb", "conversation_id": "others"})["conversation_id"]
    remembered(app, client, other, cid)

    assert runner.invoke(args=["clients", "revoke", "weni"]).exit_code == 0

    assert message(client, other, cid, 1).status_code == 202
    error_of(message(client, auth, cid, 2), 401)


def test_without_redis_every_request_reads_the_database_and_revocation_is_immediate(
        app_factory):
    app, client, auth, cid = _app_with_conversation(
        app_factory, "no-redis", REDIS_URL=UNREACHABLE_REDIS, RATE_LIMIT_PER_MINUTE=0)

    with statements(app) as seen:
        assert message(client, auth, cid, 1).status_code == 202
    assert reads_clients(seen)

    _revoke_in_the_database(app, "weni")
    error_of(message(client, auth, cid, 2), 401)


@pytest.mark.parametrize("redis", [UNREACHABLE_REDIS, None], ids=["down", "unset"])
def test_revoking_without_redis_says_how_long_keys_may_still_work(app_factory, redis):
    app = app_factory(REDIS_URL=redis, CREDENTIAL_CACHE_SECONDS=30)
    make_client(app)

    result = app.test_cli_runner().invoke(args=["clients", "revoke", "weni"])

    assert result.exit_code == 0, result.output
    assert "Redis was not reached" in result.output and "30 s" in result.output
    with app.app_context():
        assert db.session.execute(db.select(ApiClient.revoked_at)).scalar_one() is not None


def test_a_change_behind_the_adapters_back_is_seen_within_the_cache_bound(app_factory):
    app, client, auth, cid = _app_with_conversation(
        app_factory, "bound", CREDENTIAL_CACHE_SECONDS=2)
    remembered(app, client, auth, cid)

    _revoke_in_the_database(app, "weni")

    assert message(client, auth, cid, 1).status_code == 202  # remembered: no signal came
    wait_until(lambda: message(client, auth, cid, 2).status_code == 401, timeout=8,
               what="the remembered key to expire from the cache")


def test_no_remembering_when_turned_off(app_factory):
    app, client, auth, cid = _app_with_conversation(app_factory, "off", CREDENTIAL_CACHE_SECONDS=0)
    with statements(app) as seen:
        assert message(client, auth, cid, 1).status_code == 202

    assert reads_clients(seen)
    listener = cache_for(app).listener_name  # a lookup that may remember starts it
    assert listener not in {thread.name for thread in threading.enumerate()}
    _revoke_in_the_database(app, "weni")
    error_of(message(client, auth, cid, 2), 401)


def test_a_remembered_token_stops_working_when_it_expires(app, client, auth):
    cid = start(client, auth, {"site": "lb", "conversation_id": "token"})["conversation_id"]
    with app.app_context():
        weni = db.session.execute(db.select(ApiClient)).scalar_one()
        token = issue_token(client=weni, ttl=2)
        db.session.commit()
    headers = {"Authorization": f"Token {token}"}
    listening(app)

    with statements(app) as seen:
        assert message(client, headers, cid, 1).status_code == 202
        assert message(client, headers, cid, 2).status_code == 202
    assert sum("FROM api_tokens" in statement for statement in seen) == 1  # then remembered

    wait_until(lambda: message(client, headers, cid, 3).status_code == 401, timeout=8,
               what="the token to expire")


def test_a_lookup_that_raced_a_revocation_is_not_remembered(app):
    """Read before the revocation, offered to the cache after it: refused."""
    listening(app)
    with app.app_context():
        cache = cache_for(app)
        version = cache.version()
        # the database read happens here; then the revocation commits and is signalled:
        assert forget_all(app)
        cache.remember("digest", CALLER, None, version)

        assert cache.get("digest", utcnow()) is None
        cache.remember("digest", CALLER, None, cache.version())
        assert cache.get("digest", utcnow()).caller == CALLER


def test_a_revocation_in_another_process_reaches_this_one_through_redis(app_factory):
    serving = app_factory()
    revoking = app_factory(DELIVERY_QUEUE=serving.config["DELIVERY_QUEUE"])  # same deployment
    client = serving.test_client()
    auth = {"Authorization": f"Token {make_client(serving)}"}
    cid = start(client, auth, {"site": "lb", "conversation_id": "elsewhere"})["conversation_id"]
    remembered(serving, client, auth, cid)

    result = revoking.test_cli_runner().invoke(args=["clients", "revoke", "weni"])

    assert result.exit_code == 0, result.output
    wait_until(lambda: len(cache_for(serving)) == 0, timeout=5,
               what="the other process's cache to forget")
    error_of(message(client, auth, cid, 1), 401)


def test_a_lost_subscription_forgets_and_remembers_nothing_until_it_is_back(
        app, client, auth, redis_url):
    cid = start(client, auth, {"site": "lb", "conversation_id": "lost"})["conversation_id"]
    remembered(app, client, auth, cid)
    cache = cache_for(app)
    version = cache._version

    _kill_listener(redis_url, cache.listener_name)

    wait_until(lambda: cache._version > version, timeout=10,
               what="the listener to notice its connection is gone")
    listening(app)  # it subscribes again: messages missed meanwhile cannot matter
    with statements(app) as seen:
        assert message(client, auth, cid, 1).status_code == 202
    assert reads_clients(seen)


def _kill_listener(redis_url: str, name: str) -> None:
    redis = Redis.from_url(redis_url)
    try:
        killed = [redis.client_kill_filter(_id=c["id"]) for c in redis.client_list()
                  if c.get("name") == name]
    finally:
        redis.close()
    assert killed, f"no Redis client named {name}"


def test_the_cache_stays_bounded(app):
    listening(app)
    with app.app_context():
        cache = cache_for(app)
        for n in range(MAX_ENTRIES + 10):
            cache.remember(f"digest-{n}", CALLER, None, cache.version())

        assert len(cache) <= MAX_ENTRIES
        assert cache.get(f"digest-{MAX_ENTRIES + 9}", utcnow()).caller == CALLER
