"""The delivery pipeline: a slot that frees takes the next lane head at once (no wave
waits for its slowest call), and a site's ``max_in_flight`` caps the calls it gets at
once. Over real HTTP against a helpline run here, with the engine's own drain."""

from __future__ import annotations

import threading
import time

import pytest
from flask import Flask, request
from werkzeug.serving import make_server

from adapter.delivery.engine import drain
from tests.conftest import make_client
from tests.support import loopback_plugin
from tests.support.sites import write_site
from tests.support.waiting import wait_until


class GatedHelpline:
    """Answers at once, except calls for ``slow_session``, which wait for ``release``.
    Records arrivals, and how many calls were in flight at most."""

    def __init__(self) -> None:
        self.slow_session: str | None = None
        self.release = threading.Event()
        self.arrived: list[str] = []
        self.in_flight = self.most_in_flight = 0
        self._lock = threading.Lock()
        app = Flask("gated")

        @app.post("/in")
        def receive():
            body = request.get_json()
            with self._lock:
                self.in_flight += 1
                self.most_in_flight = max(self.most_in_flight, self.in_flight)
            try:
                if body["session_id"] == self.slow_session:
                    self.release.wait(20)
                else:
                    time.sleep(0.05)  # a helpline's own work: lets calls overlap
                with self._lock:
                    self.arrived.append(body["session_id"])
            finally:
                with self._lock:
                    self.in_flight -= 1
            return {"ok": True}

        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.port}/in"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def helpline():
    peer = GatedHelpline()
    yield peer
    peer.release.set()
    peer.server.shutdown()


def _world(app_factory, tmp_path, helpline, **policies):
    write_site(tmp_path, "pl", name="Pipeline", plugin="loopback",
               routing={"locations": ["Pipeland"]}, helpline={"url": helpline.url},
               policies=policies)
    app = app_factory(countries=tmp_path, plugins=(loopback_plugin,),
                      DELIVERY_CONCURRENCY=2)
    auth = {"Authorization": f"Token {make_client(app)}"}
    ids = []
    for n in range(6):  # six conversations: six lanes, each opened (one call) first
        started = app.test_client().post("/v1/conversations", headers=auth, json={
            "location": "Pipeland", "contact": {"uuid": f"c-pipe-{n}"}})
        assert started.status_code == 201
        ids.append(started.json["id"])
    return app, ids


def _drain_in_thread(app) -> threading.Thread:
    def run():
        with app.app_context():
            drain(app)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_a_slow_call_does_not_hold_up_the_others(app_factory, tmp_path, helpline):
    app, ids = _world(app_factory, tmp_path, helpline)
    helpline.slow_session = ids[0]
    drainer = _drain_in_thread(app)

    # With waves of two, the call beside the slow one would wait with it; here the other
    # slot goes on taking lane heads while the slow call is still out.
    wait_until(lambda: set(ids[1:]) <= set(helpline.arrived), timeout=10,
               what="the five other lanes delivered while the first call hangs")
    assert ids[0] not in helpline.arrived
    helpline.release.set()
    drainer.join(20)
    assert helpline.arrived[-1] == ids[0]
    assert helpline.most_in_flight <= 2  # the worker's cap


def test_a_site_cap_keeps_a_small_helpline_from_being_flooded(app_factory, tmp_path,
                                                              helpline):
    app, ids = _world(app_factory, tmp_path, helpline, max_in_flight=1)
    _drain_in_thread(app).join(30)
    assert sorted(helpline.arrived) == sorted(ids)
    assert helpline.most_in_flight == 1
