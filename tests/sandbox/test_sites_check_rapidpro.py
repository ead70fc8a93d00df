"""``sites check`` checks the RapidPro side too (token, every configured flow), over
HTTP against the sandbox RapidPro; a private CA is trusted through ``ca_bundle``, and a
TLS failure is reported as one. A flow missing from the workspace keeps the event (a site
problem) instead of failing it."""

from __future__ import annotations

import subprocess
import threading
import uuid

import pytest
from werkzeug.serving import make_server

from adapter.delivery.engine import drain
from adapter.extensions import db
from adapter.models import Delivery, DeliveryStatus, Message, MessageStatus
from adapter.sandbox.rapidpro import create_rapidpro_app
from adapter.sites import SiteConfigError
from tests.conftest import make_client
from tests.core.conftest import counsellor_message
from tests.sandbox.conftest import FLOW
from tests.support import loopback_plugin
from tests.support.sites import write_site

MISSING = str(uuid.UUID(int=7))


def _site(folder, **rapidpro):
    write_site(folder, "rp", name="RapidPro check", plugin="loopback",
               routing={"locations": ["Rapidland"]},
               helpline={"url": "http://127.0.0.1:9/helpline"}, **rapidpro)


def _check(app_factory, folder):
    app = app_factory(countries=folder, plugins=(loopback_plugin,))
    result = app.test_cli_runner().invoke(args=["sites", "check", "rp"])
    return result.exit_code, [line for line in result.output.splitlines()
                              if line.startswith("rp: rapidpro")]


def test_a_good_token_and_flows_pass(app_factory, tmp_path, rapidpro):
    _site(tmp_path, rapidpro={"base_url": rapidpro.url, "token": "tok-weni",
                              "flows": {"closed": FLOW}})
    code, lines = _check(app_factory, tmp_path)
    assert (code, lines) == (0, ["rp: rapidpro ok token accepted; flows found: closed"])


@pytest.mark.parametrize(("given", "problem"), [
    ({"token": "tok-wrong"}, "rp: rapidpro FAIL token refused (HTTP 401): set [rapidpro] token"),
    ({"flows": {"closed": FLOW, "no_counsellor": MISSING}},
     f"rp: rapidpro FAIL flow no_counsellor = {MISSING} is not a flow of the workspace: "
     "fix [rapidpro.flows] no_counsellor"),
    ({"path": "/not-rapidpro/"}, "rp: rapidpro FAIL {url}/not-rapidpro/api/v2/flows.json: "
                                 "HTTP 404"),
])
def test_each_problem_is_one_line_and_fails_the_check(app_factory, tmp_path, rapidpro,
                                                      given, problem):
    settings = {"token": "tok-weni", **given}
    path = settings.pop("path", "")
    _site(tmp_path, rapidpro={"base_url": rapidpro.url + path, **settings})
    code, lines = _check(app_factory, tmp_path)
    assert code == 1
    assert len(lines) == 1 and lines[0].startswith(problem.format(url=rapidpro.url)), lines


@pytest.fixture
def private_ca(tmp_path):
    """A RapidPro sandbox over HTTPS with a certificate no system store trusts."""
    cert, key = tmp_path / "ca.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    app = create_rapidpro_app({"tokens": {"tok-tls": "tls-org"}, "flows": {FLOW: "events"}})
    server = make_server("127.0.0.1", 0, app, threaded=True, ssl_context=(str(cert), str(key)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.port}", cert
    server.shutdown()


def test_a_private_ca_is_trusted_only_through_ca_bundle(app_factory, tmp_path, private_ca):
    url, cert = private_ca
    untrusted, trusted = tmp_path / "untrusted", tmp_path / "trusted"
    _site(untrusted, rapidpro={"base_url": url, "token": "tok-tls", "flows": {"closed": FLOW}})
    code, lines = _check(app_factory, untrusted)
    assert code == 1 and lines[0].startswith("rp: rapidpro FAIL tls: "), lines
    assert "ca_bundle" in lines[0]

    _site(trusted, rapidpro={"base_url": url, "token": "tok-tls", "flows": {"closed": FLOW},
                             "ca_bundle": str(cert)})
    assert _check(app_factory, trusted) == (
        0, ["rp: rapidpro ok token accepted; flows found: closed"])


@pytest.mark.parametrize("where", ["site", "rapidpro"])
def test_a_ca_bundle_that_is_not_a_file_stops_start_up(app_factory, tmp_path, where):
    missing = str(tmp_path / "nowhere.pem")
    extra = {"ca_bundle": missing} if where == "site" else {}
    rapidpro = {"base_url": "https://rp.example/", "token": "t"}
    if where == "rapidpro":
        rapidpro["ca_bundle"] = missing
    write_site(tmp_path, "rp", name="RapidPro check", plugin="loopback",
               helpline={"url": "http://127.0.0.1:9/helpline"}, rapidpro=rapidpro, **extra)
    key = "ca_bundle" if where == "site" else "rapidpro.ca_bundle"
    with pytest.raises(SiteConfigError, match=rf"rp\.toml: {key}: no readable file"):
        app_factory(countries=tmp_path, plugins=(loopback_plugin,))


def test_a_flow_missing_from_the_workspace_keeps_the_reply(app_factory, tmp_path, rapidpro):
    """RapidPro answers 400 "No such object" for the flow: the counsellor's reply is not at
    fault, the site's [rapidpro.flows] is. The reply waits for the fix instead of failing."""
    _site(tmp_path, rapidpro={"base_url": rapidpro.url, "token": "tok-weni",
                              "message_mode": "flow_starts", "flows": {"message": MISSING}})
    app = app_factory(countries=tmp_path, plugins=(loopback_plugin,))
    started = app.test_client().post(
        "/v1/conversations", headers={"Authorization": f"Token {make_client(app)}"},
        json={"location": "Rapidland", "contact": {"uuid": "5b7b4a0e-8a4c-4f3e-9d55-0c7f2a1d9e01"}})
    assert started.status_code == 201
    counsellor_message(app, started.json["id"], text="I am here")
    with app.app_context():
        drain(app)
        reply = db.session.execute(db.select(Message)).scalar_one()
        delivery = db.session.execute(db.select(Delivery).where(
            Delivery.target == "chatbot")).scalar_one()
        assert reply.status == MessageStatus.ACCEPTED  # not failed: the child will get it
        assert delivery.status == DeliveryStatus.PENDING
        assert "flow is not in the workspace" in delivery.last_error
    assert rapidpro.client.records("flow_starts") == []


def test_a_reply_refused_by_tls_says_so_and_is_kept(app_factory, tmp_path, private_ca):
    """The delivery's last error names TLS (not "connection"), the fix an operator needs."""
    url, _ = private_ca
    _site(tmp_path, rapidpro={"base_url": url, "token": "tok-tls"})
    app = app_factory(countries=tmp_path, plugins=(loopback_plugin,))
    started = app.test_client().post(
        "/v1/conversations", headers={"Authorization": f"Token {make_client(app)}"},
        json={"location": "Rapidland", "contact": {"uuid": "5b7b4a0e-8a4c-4f3e-9d55-0c7f2a1d9e01"}})
    counsellor_message(app, started.json["id"], text="I am here")
    with app.app_context():
        drain(app)
        delivery = db.session.execute(db.select(Delivery).where(
            Delivery.target == "chatbot")).scalar_one()
        assert delivery.status == DeliveryStatus.PENDING
        assert delivery.last_error == "tls: certificate verify failed"
