"""A site that cannot be delivered to as configured (a secret unset) holds its
deliveries: no call with an empty credential, no attempt used up, nothing failed; the
start says so; an operator sees and retries them; a worker with the site complete
delivers them, in order. And a helpline that stays down is probed at the probe
interval, not at every sweep."""

from __future__ import annotations

import pytest

from adapter import create_app
from adapter.delivery.engine import drain
from adapter.delivery.held import release_held
from adapter.delivery.recovery import probe_failing_sites
from adapter.extensions import db
from adapter.models import Conversation, Delivery, DeliveryStatus
from tests.conftest import make_client
from tests.support import loopback_plugin
from tests.support.receiver import receiving
from tests.support.sites import write_site

TOKEN = "HELD_TEST_HELPLINE_TOKEN"
CONTACT = {"uuid": "0f0e3c52-6a43-4d0c-9a3c-1d7c1e2f3a4b"}


@pytest.fixture
def receiver():
    with receiving() as peer:
        yield peer


@pytest.fixture
def countries(tmp_path, receiver):
    folder = tmp_path / "countries-held"
    write_site(folder, "hd", name="Held", plugin="loopback",
               routing={"locations": ["Heldland"]},
               helpline={"url": receiver.url, "token": f"${{{TOKEN}}}"})
    return folder


def same_database_app(app, countries):
    """Another process's app on the same database and queue (a worker started with
    other environment variables): nothing is emptied or recreated."""
    keys = ("SQLALCHEMY_DATABASE_URI", "REDIS_URL", "DELIVERY_QUEUE", "SECRET_KEY", "TESTING")
    return create_app({**{k: app.config[k] for k in keys}, "COUNTRIES_DIR": str(countries)},
                      plugins=(loopback_plugin,))


def deliveries(app) -> list[Delivery]:
    with app.app_context():
        rows = db.session.execute(db.select(Delivery).order_by(Delivery.id)).scalars().all()
        db.session.expunge_all()
        return rows


def start(app) -> dict:
    response = app.test_client().post(
        "/v1/conversations", headers={"Authorization": f"Token {make_client(app)}"},
        json={"location": "Heldland", "contact": CONTACT, "text": "hello"})
    assert response.status_code == 201, response.json
    return response.json


def test_an_unset_secret_holds_the_deliveries_and_the_start_says_so(
        app_factory, countries, receiver, monkeypatch):
    monkeypatch.delenv(TOKEN, raising=False)
    app = app_factory(countries=countries)
    started = start(app)

    assert started["state"] == "requested"
    assert started["site_problem"] == "site config incomplete: helpline.token unset"
    with app.app_context():
        assert drain(app).done == 0
    rows = deliveries(app)
    assert [(d.action, d.status, d.attempts) for d in rows] == [
        ("open", DeliveryStatus.HELD, 0), ("message", DeliveryStatus.HELD, 0)]
    assert {d.last_error for d in rows} == {"site config incomplete: helpline.token unset"}
    assert receiver.received == []  # never a call with an empty credential
    with app.app_context():
        assert db.session.get(Conversation, started["id"]).state == "requested"

    listed = app.test_cli_runner().invoke(args=["deliveries", "list", "--held"])
    assert listed.exit_code == 0 and listed.output.count("\theld\t") == 2
    retried = app.test_cli_runner().invoke(args=["deliveries", "retry", str(rows[0].id)])
    assert retried.exit_code == 0, retried.output
    with app.app_context():
        drain(app)  # the worker still lacks the secret: held again, no attempt counted
    assert [(d.status, d.attempts) for d in deliveries(app)] == [
        (DeliveryStatus.HELD, 0), (DeliveryStatus.HELD, 0)]
    assert receiver.received == []

    monkeypatch.setenv(TOKEN, "tok-1")
    worker = same_database_app(app, countries)  # restarted with the secret set
    with worker.app_context():
        assert release_held(worker) == 2
        assert drain(worker).done == 2
    assert [r["json"]["action"] for r in receiver.received] == ["open", "message"]
    assert {r["headers"]["Authorization"] for r in receiver.received} == {"Bearer tok-1"}
    with worker.app_context():
        assert db.session.get(Conversation, started["id"]).state == "waiting"


def test_a_secret_set_to_an_empty_string_is_unset(app_factory, countries, receiver,
                                                  monkeypatch):
    """`KE_TOKEN=` in an environment file sets nothing usable: held, never sent as ""."""
    monkeypatch.setenv(TOKEN, "")
    app = app_factory(countries=countries)
    assert start(app)["site_problem"] == "site config incomplete: helpline.token unset"
    with app.app_context():
        drain(app)
    assert {d.status for d in deliveries(app)} == {DeliveryStatus.HELD}
    assert receiver.received == []


def test_a_worker_without_the_secret_holds_what_the_web_tier_queued(
        app_factory, countries, receiver, monkeypatch):
    monkeypatch.setenv(TOKEN, "tok-1")
    web = app_factory(countries=countries)
    started = start(web)
    assert "site_problem" not in started
    assert {d.status for d in deliveries(web)} == {DeliveryStatus.PENDING}

    monkeypatch.delenv(TOKEN)
    worker = same_database_app(web, countries)
    with worker.app_context():
        result = drain(worker)
        assert (result.done, result.failed) == (0, 0)
        assert release_held(worker) == 0  # this worker still cannot call the site
    assert [(d.status, d.attempts) for d in deliveries(web)] == [
        (DeliveryStatus.HELD, 0), (DeliveryStatus.PENDING, 0)]  # the lane waits behind it
    assert receiver.received == []


def test_a_held_delivery_blocks_its_lane_and_is_counted_in_metrics(
        app_factory, countries, monkeypatch):
    monkeypatch.delenv(TOKEN, raising=False)
    app = app_factory(countries=countries)
    start(app)
    monitor = make_client(app, name="monitor", role="monitor")
    metrics = app.test_client().get("/metrics", headers={"Authorization": f"Token {monitor}"})
    assert metrics.status_code == 200
    assert 'helpline_adapter_deliveries{site="hd",status="held",target="helpline"} 2.0' \
        in metrics.get_data(as_text=True)


def test_a_helpline_that_stays_down_is_probed_once_per_interval(app_factory, tmp_path):
    folder = tmp_path / "countries-down"
    write_site(folder, "dn", name="Down", plugin="loopback", routing={"locations": ["Downland"]},
               helpline={"url": "http://127.0.0.1:9/refused"})
    app = app_factory(countries=folder, RETRY_SCHEDULE=[60.0], RETRY_JITTER=0,
                      PROBE_INTERVAL_SECONDS=5.0)
    app.test_client().post("/v1/conversations",
                           headers={"Authorization": f"Token {make_client(app)}"},
                           json={"location": "Downland", "contact": CONTACT})
    with app.app_context():
        assert drain(app).retried == 1  # refused: backed off a minute
        assert probe_failing_sites(app) == 1  # the probe: due now
        assert drain(app).retried == 1  # still down: backed off again
        # The next sweeps, a second apart, leave it alone until the interval has passed.
        assert probe_failing_sites(app) == 0
        assert probe_failing_sites(app) == 0
