"""The operations console through Flask's test client, on SQLite and PostgreSQL, with a
real helpline stand-in over HTTP (tests/console/test_console_browser.py drives a real browser).

Accounts come from the real CLI; logins go through the real form, CSRF token included."""

from __future__ import annotations

from datetime import timedelta

import pytest

from adapter.extensions import db
from adapter.models import Conversation, DeliveryStatus, Message, utcnow

from .support import (
    PASSWORD,
    TEXT,
    audit_actions,
    create_operator,
    deliveries,
    drain_all,
    log_in,
    send,
    start,
    token,
    write_sites,
)


@pytest.fixture
def console_app(app_factory, tmp_path, helpline):
    folder = tmp_path / "countries-console"
    write_sites(folder, helpline.url)
    return app_factory(folder, RETRY_SCHEDULE=[], LOGIN_FAILURES_PER_ACCOUNT=3)


def failed_delivery(app) -> int:
    """A conversation at ke whose open (and first message) the helpline refuses 503
    until retries run out (there are none): the open's delivery id."""
    start(app)
    drain_all(app)
    rows = [d for d in deliveries(app) if d.site == "ke"]
    assert [(d.action, d.status) for d in rows] == [
        ("open", DeliveryStatus.FAILED), ("message", DeliveryStatus.FAILED)], rows
    return rows[0].id


# ---- the CLI ------------------------------------------------------------------------

def test_operators_are_created_listed_and_disabled_from_the_cli(console_app):
    runner = console_app.test_cli_runner()
    env = {"HELPLINE_ADAPTER_OPERATOR_PASSWORD": PASSWORD}
    for args in (["operators", "--help"], ["operators", "create", "--help"],
                 ["operators", "list", "--help"], ["operators", "disable", "--help"]):
        result = runner.invoke(args=args)
        assert result.exit_code == 0 and "Usage:" in result.output, args
    assert "--role" in runner.invoke(args=["operators", "create", "--help"]).output

    create_operator(console_app, "amina", "supervisor")
    create_operator(console_app, "otieno", "viewer", "ke")
    listed = runner.invoke(args=["operators", "list"]).output.splitlines()
    assert listed == ["amina\tsupervisor\t*\tactive", "otieno\tviewer\tke\tactive"]
    assert PASSWORD not in runner.invoke(args=["operators", "list"]).output

    errors = {
        ("operators", "create", "amina", "--role", "viewer"): "already exists",
        ("operators", "create", "x", "--role", "viewer", "--site", "zz"): "no site 'zz'",
        ("operators", "disable", "nobody"): "no operator named 'nobody'",
    }
    for args, expected in errors.items():
        result = runner.invoke(args=list(args), env=env)
        assert result.exit_code != 0 and expected in result.output, (args, result.output)
        assert len(result.output.strip().splitlines()) == 1, result.output
    short = runner.invoke(args=["operators", "create", "y", "--role", "viewer"],
                          env={"HELPLINE_ADAPTER_OPERATOR_PASSWORD": "short"})
    assert short.exit_code != 0 and "at least 12" in short.output
    bad_role = runner.invoke(args=["operators", "create", "y", "--role", "admin"], env=env)
    assert bad_role.exit_code != 0

    assert runner.invoke(args=["operators", "disable", "otieno"]).exit_code == 0
    assert "otieno\tviewer\tke\tdisabled" in runner.invoke(args=["operators", "list"]).output
    assert ("cli", "operator_disabled", None) in audit_actions(console_app)


# ---- login, session, CSRF -----------------------------------------------------------

def test_every_page_needs_a_login(console_app):
    client = console_app.test_client()
    for path in ("/console/", "/console/sites", "/console/waiting", "/console/deliveries",
                 "/console/conversations/x"):
        response = client.get(path)
        assert response.status_code == 302, path
        assert response.headers["Location"].endswith("/console/login"), path
    assert client.get("/console/login").status_code == 200


def test_the_session_cookie_is_secure_httponly_strict_and_scoped(console_app):
    create_operator(console_app, "amina", "viewer")
    client = console_app.test_client()
    response = log_in(client, "amina")
    assert response.status_code == 302 and response.headers["Location"].endswith("/sites")
    cookie = [h for h in response.headers.getlist("Set-Cookie") if h.startswith("hla_console=")]
    assert cookie, response.headers
    flags = {part.strip().split("=")[0].lower(): part for part in cookie[-1].split(";")}
    assert {"secure", "httponly", "samesite", "path"} <= set(flags), cookie
    assert flags["samesite"].strip() == "SameSite=Strict"
    assert flags["path"].strip() == "Path=/console"
    page = client.get("/console/sites")
    assert page.status_code == 200 and "amina (viewer)" in page.get_data(as_text=True)
    assert page.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    # The JSON API sets no cookie.
    assert "Set-Cookie" not in console_app.test_client().get("/healthz").headers


def test_wrong_passwords_are_refused_then_limited(console_app):
    create_operator(console_app, "amina", "viewer")
    client = console_app.test_client()
    for _ in range(3):
        assert log_in(client, "amina", "wrong password!").status_code == 401
    limited = log_in(client, "amina")  # the right one, but the bucket is full
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0
    assert client.get("/console/sites").status_code == 302
    assert log_in(console_app.test_client(), "nobody", PASSWORD).status_code == 401
    refused = [(actor, action) for actor, action, _ in audit_actions(console_app)
               if action == "console_login_refused"]
    assert refused == [("console:amina", "console_login_refused")] * 3


def test_a_disabled_operator_cannot_log_in_and_its_session_ends(console_app):
    create_operator(console_app, "amina", "viewer")
    client = console_app.test_client()
    log_in(client, "amina")
    assert client.get("/console/sites").status_code == 200
    console_app.test_cli_runner().invoke(args=["operators", "disable", "amina"])
    assert client.get("/console/sites").status_code == 302
    assert log_in(console_app.test_client(), "amina").status_code == 401


def test_a_post_without_a_valid_csrf_token_is_refused(console_app):
    create_operator(console_app, "amina", "operator")
    client = console_app.test_client()
    assert client.post("/console/login", data={"name": "amina", "password": PASSWORD}
                       ).status_code == 403
    log_in(client, "amina")
    for data in ({}, {"csrf_token": "forged"}):
        refused = client.post("/console/sites/ke/retry", data=data)
        assert refused.status_code == 403, data
        assert "security token" in refused.get_data(as_text=True)
    good = token(client.get("/console/deliveries").get_data(as_text=True))
    assert client.post("/console/sites/ke/retry", data={"csrf_token": good}).status_code == 302


def test_logout_ends_every_session_of_the_operator_even_a_copied_cookie(console_app):
    create_operator(console_app, "amina", "viewer")
    client, thief = console_app.test_client(), console_app.test_client()
    log_in(client, "amina")
    cookie = client.get_cookie("hla_console", path="/console")
    thief.set_cookie("hla_console", cookie.value, path="/console")
    assert thief.get("/console/sites").status_code == 200
    page = client.get("/console/sites").get_data(as_text=True)
    assert client.post("/console/logout", data={"csrf_token": token(page)}).status_code == 302
    assert client.get("/console/sites").status_code == 302
    assert thief.get("/console/sites").status_code == 302
    actions = [a for _, a, _ in audit_actions(console_app)]
    assert actions[-2:] == ["console_login", "console_logout"]


def test_an_idle_session_is_over(app_factory, tmp_path, helpline):
    folder = tmp_path / "countries-idle"
    write_sites(folder, helpline.url)
    app = app_factory(folder, CONSOLE_IDLE_TIMEOUT_SECONDS=0)
    create_operator(app, "amina", "viewer")
    client = app.test_client()
    log_in(client, "amina")
    response = client.get("/console/sites")
    assert response.status_code == 302 and response.headers["Location"].endswith("/login")
    assert "idle" in client.get("/console/login").get_data(as_text=True)


# ---- pages and actions --------------------------------------------------------------

def test_sites_show_health_from_the_database_and_config(console_app, helpline):
    failed_delivery(console_app)
    start(console_app, "Kampala")  # ug's token is unset: held
    create_operator(console_app, "amina", "viewer")
    client = console_app.test_client()
    log_in(client, "amina")
    calls = len(helpline.received)
    html = client.get("/console/sites").get_data(as_text=True)
    assert len(helpline.received) == calls  # the page called nobody
    ke = html[html.index('id="site-ke"'):html.index('id="site-ug"')]
    ug = html[html.index('id="site-ug"'):]
    assert "failing" in ke and "loopback: HTTP 503" in ke and "<code>503</code>" in ke
    assert "held" in ug and "CONSOLE_TEST_UNSET_TOKEN" in ug
    assert "missing environment variables" in ug


def test_a_failed_delivery_is_retried_by_an_operator_and_delivered(console_app, switch):
    delivery_id = failed_delivery(console_app)
    create_operator(console_app, "ops", "operator")
    client = console_app.test_client()
    log_in(client, "ops")
    page = client.get("/console/deliveries").get_data(as_text=True)
    assert f'id="delivery-{delivery_id}"' in page and f'id="retry-{delivery_id}"' in page
    assert "loopback: HTTP 503" in page and TEXT not in page
    switch.down = False
    response = client.post(f"/console/deliveries/{delivery_id}/retry",
                           data={"csrf_token": token(page)})
    assert response.status_code == 302
    row = next(d for d in deliveries(console_app) if d.id == delivery_id)
    assert (row.status, row.attempts) == (DeliveryStatus.PENDING, 0)
    drain_all(console_app)
    row = next(d for d in deliveries(console_app) if d.id == delivery_id)
    assert row.status == DeliveryStatus.DONE
    assert [d.status for d in deliveries(console_app)][1] == DeliveryStatus.FAILED
    assert ("console:ops", "console_retry", row.conversation_id) in audit_actions(console_app)
    assert f'id="delivery-{delivery_id}"' not in client.get(
        "/console/deliveries").get_data(as_text=True)


def test_a_viewer_sees_no_retry_button_and_its_forged_post_is_refused(console_app):
    delivery_id = failed_delivery(console_app)
    create_operator(console_app, "viewer", "viewer")
    client = console_app.test_client()
    log_in(client, "viewer")
    page = client.get("/console/deliveries").get_data(as_text=True)
    assert f'id="delivery-{delivery_id}"' in page
    assert "Retry" not in page
    good = token(page)  # the viewer's own, valid token
    for path in (f"/console/deliveries/{delivery_id}/retry", "/console/sites/ke/retry"):
        assert client.post(path, data={"csrf_token": good}).status_code == 403, path
    assert deliveries(console_app)[0].status == DeliveryStatus.FAILED


def test_an_operator_limited_to_a_site_sees_only_that_site(console_app):
    delivery_id = failed_delivery(console_app)
    conversation_id = deliveries(console_app)[0].conversation_id
    create_operator(console_app, "ug-ops", "supervisor", "ug")
    client = console_app.test_client()
    log_in(client, "ug-ops")
    page = client.get("/console/deliveries").get_data(as_text=True)
    assert f'id="delivery-{delivery_id}"' not in page
    assert 'id="site-ke"' not in client.get("/console/sites").get_data(as_text=True)
    assert client.get(f"/console/conversations/{conversation_id}").status_code == 404
    assert client.post(f"/console/deliveries/{delivery_id}/retry",
                       data={"csrf_token": token(page)}).status_code == 302
    assert deliveries(console_app)[0].status == DeliveryStatus.FAILED
    assert client.post("/console/sites/ke/retry",
                       data={"csrf_token": token(page)}).status_code == 404


def test_waiting_lists_the_oldest_first_with_no_counsellor(console_app, switch):
    switch.down = False
    first = start(console_app)
    second = start(console_app, contact={"uuid": "5c1d7b2f-3a4e-4f6b-9cad-1e2f3a4b5c6d"})
    third = start(console_app, contact={"uuid": "6d2e8c3a-4b5f-4a7c-8dbe-2f3a4b5c6d7e"})
    fourth = start(console_app, contact={"uuid": "7e3f9d4b-5c6a-4b8d-9ecf-3a4b5c6d7e8f"})
    drain_all(console_app)
    with console_app.app_context():
        conversation = db.session.get(Conversation, first)
        assert conversation.state == "waiting"
        conversation.no_counsellor_at = utcnow()
        db.session.get(Conversation, third).state = "active"
        closed = db.session.get(Conversation, fourth)
        closed.state, closed.closed_at, closed.closed_by = "closed", utcnow(), "client"
        db.session.commit()
    create_operator(console_app, "amina", "viewer")
    client = console_app.test_client()
    log_in(client, "amina")
    html = client.get("/console/waiting").get_data(as_text=True)
    assert html.index(f'id="waiting-{first}"') < html.index(f'id="waiting-{second}"')
    row = html[html.index(f'id="waiting-{first}"'):html.index(f'id="waiting-{second}"')]
    assert "sent" in row
    assert f'id="waiting-{third}"' not in html and f'id="waiting-{fourth}"' not in html
    counts = html[html.index('id="counts-ke"'):].split("</tr>")[0]
    assert counts.endswith("<td>ke</td><td>2</td><td>1</td><td>1</td>"), counts


def test_text_is_for_supervisors_within_retention_and_every_view_is_audited(console_app,
                                                                           switch):
    switch.down = False
    conversation_id = start(console_app)
    send(console_app, conversation_id, "m-old", "old words")
    drain_all(console_app)
    with console_app.app_context():
        old = db.session.execute(db.select(Message).where(Message.text == "old words")
                                 ).scalar_one()
        old.created_at = utcnow() - timedelta(days=31)  # past ke's 30 days
        db.session.commit()
    create_operator(console_app, "ops", "operator")
    create_operator(console_app, "sup", "supervisor")
    operator, supervisor = console_app.test_client(), console_app.test_client()
    log_in(operator, "ops")
    log_in(supervisor, "sup")
    path = f"/console/conversations/{conversation_id}"
    page = operator.get(path).get_data(as_text=True)
    assert TEXT not in page and "show-text" not in page and "requested" in page
    assert operator.post(f"{path}/text", data={"csrf_token": token(page)}).status_code == 403
    assert TEXT not in supervisor.get(path).get_data(as_text=True)
    before = audit_actions(console_app)
    page = supervisor.get(path).get_data(as_text=True)
    shown = supervisor.post(f"{path}/text", data={"csrf_token": token(page)})
    assert shown.status_code == 200 and TEXT in shown.get_data(as_text=True)
    assert "old words" not in shown.get_data(as_text=True)
    after = audit_actions(console_app)
    assert after[len(before):] == [("console:sup", "console_text_viewed", conversation_id)]
    assert "console_text_viewed" in supervisor.get(path).get_data(as_text=True)
