"""Shared by the console's tests: a site whose helpline we can take down and bring
back, console accounts made with the real CLI, and logging in through the real form."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from adapter.extensions import db
from adapter.models import AuditEvent, Delivery
from tests.conftest import make_client
from tests.support.receiver import Receiver
from tests.support.sites import write_site

PASSWORD = "correct horse battery"  # noqa: S105 (a test account's)
CONTACT = {"uuid": "4b0c6a1e-2f3d-4e5a-8b9c-0d1e2f3a4b5c"}
TEXT = "I am scared and need help"


@dataclass
class Switch:
    """The helpline's answer: 503 while ``down``."""

    down: bool = True
    seen: list = field(default_factory=list)

    def __call__(self, count: int):
        return ({"error": "down"}, 503) if self.down else ({"ok": True}, 200)


def write_sites(folder, helpline_url: str) -> None:
    write_site(folder, "ke", name="Kenya", plugin="loopback",
               routing={"locations": ["Nairobi"]}, helpline={"url": helpline_url},
               policies={"assignment_timeout": 60, "retention_days": 30})
    write_site(folder, "ug", name="Uganda", plugin="loopback",
               routing={"locations": ["Kampala"]},
               helpline={"url": helpline_url, "token": "${CONSOLE_TEST_UNSET_TOKEN}"})


def create_operator(app, name: str, role: str, *sites: str) -> None:
    args = ["operators", "create", name, "--role", role]
    for site in sites:
        args += ["--site", site]
    result = app.test_cli_runner().invoke(
        args=args, env={"HELPLINE_ADAPTER_OPERATOR_PASSWORD": PASSWORD})
    assert result.exit_code == 0, result.output


def chatbot(app) -> dict:
    """The headers of the one chatbot client of ``app`` (made on first need)."""
    if "console-test-key" not in app.extensions:
        app.extensions["console-test-key"] = make_client(app, "weni")
    return {"Authorization": f"Token {app.extensions['console-test-key']}"}


def start(app, location: str = "Nairobi", text: str = TEXT, contact=CONTACT) -> str:
    response = app.test_client().post("/v1/conversations", headers=chatbot(app), json={
        "location": location, "contact": contact, "text": text})
    assert response.status_code == 201, response.json
    return response.json["id"]


def send(app, conversation_id: str, message_id: str, text: str) -> None:
    response = app.test_client().post(
        f"/v1/conversations/{conversation_id}/messages", headers=chatbot(app),
        json={"message_id": message_id, "text": text})
    assert response.status_code == 202, response.json


def drain_all(app):
    """The delivery engine's own drain, as a worker runs it."""
    from adapter.delivery.engine import drain

    with app.app_context():
        return drain(app)


def token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF token in the page"
    return found.group(1)


def log_in(client, name: str, password: str = PASSWORD):
    page = client.get("/console/login")
    return client.post("/console/login", data={
        "name": name, "password": password, "csrf_token": token(page.get_data(as_text=True))})


def deliveries(app) -> list[Delivery]:
    with app.app_context():
        rows = db.session.execute(db.select(Delivery).order_by(Delivery.id)).scalars().all()
        db.session.expunge_all()
        return rows


def audit_actions(app) -> list[tuple[str, str, str | None]]:
    with app.app_context():
        return [(e.actor, e.action, e.conversation_id) for e in db.session.execute(
            db.select(AuditEvent).order_by(AuditEvent.id)).scalars()]


def stop(peer: Receiver) -> None:
    peer.stop()
