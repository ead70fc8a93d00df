"""Failed password logins are limited per account and per address, before any hash:
``POST /api/token/`` (an API client's password) and ``POST /v1/sites/<site>/openchs/token/``
(a site's callback credentials) alike."""

from __future__ import annotations

import time

import pytest
from redis import Redis

from tests.compat.conftest import make_account
from tests.support.sites import write_site

ACCOUNT_LIMIT = 3
ADDRESS_LIMIT = 5
LIMITS = {"LOGIN_FAILURES_PER_ACCOUNT": ACCOUNT_LIMIT,
          "LOGIN_FAILURES_PER_ADDRESS": ADDRESS_LIMIT}
UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"
HERE, THERE = "198.51.100.7", "203.0.113.9"


class Logins:
    """One of the two password logins, for accounts ``first`` and ``second``."""

    def __init__(self, kind: str, app) -> None:
        self.kind, self.app, self.client = kind, app, app.test_client()
        self.first, self.second = ("alice", "bob") if kind == "client" else ("ke", "tz")

    def post(self, account: str, good: bool = False, address: str = HERE, **kwargs):
        if self.kind == "client":
            path = "/api/token/"
            body = {"username": account, "password": f"{account}-pass" if good else "guess"}
        else:
            path = f"/v1/sites/{account}/openchs/token/"
            body = {"username": f"cb-{account}",
                    "password": f"cb-{account}-secret" if good else "guess"}
        return self.client.post(path, json=body, environ_base={"REMOTE_ADDR": address},
                                **kwargs)

    def status(self, account: str, good: bool = False, address: str = HERE, **kwargs) -> int:
        return self.post(account, good, address, **kwargs).status_code


@pytest.fixture(params=["client", "site"])
def logins(request, app_factory, tmp_path):
    """Make apps (settings as keyword arguments) whose two accounts can log in."""

    def make(**config) -> Logins:
        folder = tmp_path / "countries-logins"
        for code in ("ke", "tz"):
            write_site(folder, code, name=f"OpenCHS {code}", plugin="openchs",
                       routing={"locations": [f"{code}-land"]},
                       helpline={"base_url": "http://127.0.0.1:9/helpline/", "username": "u",
                                 "password": "p", "callback_username": f"cb-{code}",
                                 "callback_password": f"cb-{code}-secret"})
        app = app_factory(countries=folder, **{**LIMITS, **config})
        if request.param == "client":
            for name in ("alice", "bob"):
                make_account(app, name=name, password=f"{name}-pass")
        return Logins(request.param, app)

    return make


def assert_too_many(response, window: int = 900) -> None:
    assert response.status_code == 429, response.json
    assert response.json == {"code": "too_many_logins",
                             "message": "too many failed logins; try again later",
                             "errors": {}}
    assert 1 <= int(response.headers["Retry-After"]) <= window


def test_past_the_account_limit_even_the_right_password_is_refused(logins):
    world = logins()
    statuses = [world.status(world.first) for _ in range(ACCOUNT_LIMIT)]
    assert statuses == [401] * ACCOUNT_LIMIT

    assert_too_many(world.post(world.first))
    assert_too_many(world.post(world.first, good=True))
    # The account is limited, wherever the caller is; the other account is not.
    assert_too_many(world.post(world.first, good=True, address=THERE))
    assert world.status(world.second, good=True) == 200


def test_the_address_limit_spans_accounts_and_other_addresses_are_not_held(logins):
    world = logins()
    for _ in range(ACCOUNT_LIMIT):
        assert world.status(world.first) == 401
    # Another account from the same address: free until the address is full.
    assert world.status(world.second, good=True) == 200
    for _ in range(ADDRESS_LIMIT - ACCOUNT_LIMIT):
        assert world.status(world.second) == 401
    assert_too_many(world.post(world.second, good=True))
    # The second account's own bucket is not full: from elsewhere it logs in.
    assert world.status(world.second, good=True, address=THERE) == 200


def test_successful_logins_are_not_counted(logins):
    world = logins()
    for _ in range(ACCOUNT_LIMIT + ADDRESS_LIMIT):
        assert world.status(world.first, good=True) == 200
    for _ in range(ACCOUNT_LIMIT - 1):
        assert world.status(world.first) == 401
    assert world.status(world.first, good=True) == 200
    assert world.status(world.first) == 401  # the limit-th failure
    assert_too_many(world.post(world.first, good=True))


def test_once_the_window_has_passed_the_right_password_works_again(logins):
    world = logins(LOGIN_WINDOW_SECONDS=1)
    for _ in range(ACCOUNT_LIMIT):
        assert world.status(world.first) == 401
    assert_too_many(world.post(world.first, good=True), window=1)

    deadline = time.monotonic() + 5
    while (status := world.status(world.first, good=True)) == 429:
        assert time.monotonic() < deadline, "still limited 5 s after a 1 s window"
        time.sleep(0.05)
    assert status == 200
    assert world.status(world.first) == 401  # a new window, counting from zero


def test_a_limited_login_checks_no_password_hash(app_factory, monkeypatch):
    """The limit is asked before the hash: no scrypt work for a flood of guesses."""
    import adapter.auth

    app = app_factory(**LIMITS)
    make_account(app, name="alice", password="alice-pass")
    client = app.test_client()
    checked = []
    real_check = adapter.auth.check_password_hash

    def counting_check(stored, password):
        checked.append(1)
        return real_check(stored, password)

    monkeypatch.setattr(adapter.auth, "check_password_hash", counting_check)
    for _ in range(ACCOUNT_LIMIT):
        client.post("/api/token/", json={"username": "alice", "password": "guess"})
    assert len(checked) == ACCOUNT_LIMIT  # each answered failure was a real check

    for password in ["guess"] * 5 + ["alice-pass"]:
        limited = client.post("/api/token/", json={"username": "alice", "password": password})
        assert limited.status_code == 429
    assert len(checked) == ACCOUNT_LIMIT


def test_without_redis_logins_work_and_are_limited_in_this_process(logins, caplog):
    # A window long enough for the failures to fall inside it on a loaded machine (with
    # 1 s, three password checks under a parallel suite took longer than the window).
    world = logins(REDIS_URL=UNREACHABLE_REDIS, LOGIN_WINDOW_SECONDS=4)
    assert world.status(world.first, good=True) == 200  # the helpline can still log in
    for _ in range(ACCOUNT_LIMIT):
        assert world.status(world.first) == 401
    assert_too_many(world.post(world.first, good=True), window=4)
    assert world.status(world.second, good=True) == 200
    assert any(r.getMessage() == "login.limits_local" for r in caplog.records)

    deadline = time.monotonic() + 15
    while (status := world.status(world.first, good=True)) == 429:
        assert time.monotonic() < deadline, "still limited 15 s after a 4 s window"
        time.sleep(0.05)
    assert status == 200


def test_behind_a_proxy_the_forwarded_address_is_the_callers(logins):
    world = logins(PROXY_FIX_X_FOR=1, LOGIN_FAILURES_PER_ACCOUNT=0)
    proxy = "10.0.0.2"

    def via_proxy(client_address: str, good: bool = False) -> int:
        return world.status(world.first, good, address=proxy,
                            headers={"X-Forwarded-For": client_address})

    for _ in range(ADDRESS_LIMIT):
        assert via_proxy(HERE) == 401
    assert via_proxy(HERE, good=True) == 429
    assert via_proxy(THERE, good=True) == 200  # same proxy, another client


def test_without_the_proxy_setting_a_forged_forwarded_address_changes_nothing(logins):
    world = logins(LOGIN_FAILURES_PER_ACCOUNT=0)
    for n in range(ADDRESS_LIMIT):
        assert world.status(world.first, headers={"X-Forwarded-For": f"192.0.2.{n}"}) == 401
    assert world.status(world.first, good=True,
                        headers={"X-Forwarded-For": "192.0.2.200"}) == 429


def test_limits_of_zero_turn_them_off(logins):
    world = logins(LOGIN_FAILURES_PER_ACCOUNT=0, LOGIN_FAILURES_PER_ADDRESS=0)
    for _ in range(ADDRESS_LIMIT + 1):
        assert world.status(world.first) == 401
    assert world.status(world.first, good=True) == 200


def test_redis_keys_are_namespaced_and_name_no_account_or_address(logins, redis_url):
    world = logins()
    assert world.status(world.first) == 401
    namespace = f"helpline-adapter:login:{world.app.config['DELIVERY_QUEUE']}:"
    keys = [key.decode() for key in Redis.from_url(redis_url).keys(namespace + "*")]
    assert len(keys) == 2, keys
    for key in keys:
        assert world.first not in key.removeprefix(namespace) and HERE not in key


def test_both_logins_document_429(app):
    paths = app.test_client().get("/openapi.json").json["paths"]
    for path in ("/api/token/", "/v1/sites/{site}/openchs/token/"):
        assert "429" in paths[path]["post"]["responses"], path
