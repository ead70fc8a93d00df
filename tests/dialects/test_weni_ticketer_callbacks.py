"""The weni-ticketer's callbacks to mailroom, through the outbox, against the sandbox
mailroom (a real subprocess that verifies every signature, as Weni's web.go does).

The adapter runs in-process, served over real HTTP (mailroom opens tickets at it and
echoes closes back to it while our callback waits); the delivery engine runs in the
test's thread (``drain``), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from werkzeug.serving import make_server

from adapter import protocol
from adapter.config import DefaultConfig
from adapter.delivery.engine import drain
from adapter.extensions import db
from adapter.models import Conversation, Delivery, Message, utcnow
from adapter.sites import SiteConfigError, WeniSettings, load_site_file
from adapter.transactions import commit
from tests.conftest import make_client
from tests.support.mailroom import mailroom
from tests.support.receiver import Receiver
from tests.support.sites import write_site
from tests.support.waiting import wait_until

from . import weni_contract as contract
from .conftest import SECRET, SECRET_ENV

ASSIGNED = "A counsellor is here."
STILL_SWA = "Bado uko kwenye foleni."


@pytest.fixture(scope="module")
def mailroom_process():
    with mailroom(contract.TOPIC, SECRET) as sandbox:
        yield sandbox


@pytest.fixture
def helpline():
    peer = Receiver()
    yield peer
    peer.stop()


@pytest.fixture
def served(app_factory, tmp_path, monkeypatch, helpline, mailroom_process):
    """The adapter, served; the mailroom pointed at it with this app's key."""
    monkeypatch.setenv(SECRET_ENV, SECRET)
    folder = tmp_path / "served-countries"
    write_site(folder, "ke", name="Kenya", plugin="loopback",
               routing={"locations": ["Nairobi"]}, helpline={"url": helpline.url},
               policies={"on_no_counsellor": "close"},
               chatbot={"weni": {"topics": [contract.TOPIC], "assigned_text": ASSIGNED,
                                 "webhook_secret": "${" + SECRET_ENV + "}"}},
               # Swahili for one text only: the others fall back to [chatbot.weni]'s
               texts={"languages": ["eng", "swa"], "swa": {"still_waiting": STILL_SWA}})
    app = app_factory(folder, RETRY_SCHEDULE=[0.1, 0.2, 0.3], RETRY_JITTER=0,
                      DELIVERY_CONCURRENCY=1)
    key = make_client(app, name="weni-workspace")
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    mailroom = mailroom_process.client
    mailroom.reset()
    mailroom.configure(base_url=f"http://127.0.0.1:{server.port}", api_token=key,
                       webhook_secret=SECRET)
    yield app, mailroom_process
    server.shutdown()


def open_ticket(served, **contact) -> tuple[str, str]:
    import requests

    app, mailroom = served
    opened = requests.post(f"{mailroom.url}/_sandbox/tickets/open", timeout=30, json={
        "contact": {"urns": ["whatsapp:254700000001"], **contact}, "body": "high risk"}).json()
    assert opened["ok"], opened
    deliver(app)
    return opened["ticket_uuid"], opened["external_id"]


def deliver(app):
    with app.app_context():
        return drain(app)


def reply(app, external_id: str, text: str, message_id: str) -> str:
    with app.app_context():
        conversation = db.session.get(Conversation, external_id)
        message, _ = protocol.accept_counsellor_message(
            conversation, text=text, message_id=message_id, counsellor="counsellor-amani",
            attachments=[], actor="test-helpline")
        commit()
        return message.id


def deliveries(app, **where) -> list[Delivery]:
    with app.app_context():
        rows = db.session.execute(db.select(Delivery).filter_by(target="chatbot", **where)
                                  .order_by(Delivery.id)).scalars().all()
        db.session.expunge_all()
        return rows


def sent_to_child(mailroom) -> list[dict]:
    return mailroom.client.records("messages")


def test_a_counsellor_reply_is_a_signed_callback_recorded_once(served):
    app, mailroom = served
    ticket, external_id = open_ticket(served)
    message_id = reply(app, external_id, "I am here.", "h-1")
    deliver(app)

    messages = sent_to_child(mailroom)
    assert [m["text"] for m in messages] == [ASSIGNED, "I am here."]
    assert messages[1]["message_external_id"] == message_id
    assert messages[1]["ticket_uuid"] == ticket
    assert all(c["accepted"] for c in mailroom.client.records("callbacks"))
    assert [(d.action, d.status, d.last_status_code) for d in deliveries(app)] == [
        ("event", "done", 200), ("message", "done", 200)]
    with app.app_context():
        assert db.session.execute(db.select(Message).filter_by(id=message_id)
                                  ).scalar_one().status == "sent"
    deliver(app)  # nothing more to do: nothing sent twice
    assert len(sent_to_child(mailroom)) == 2


def test_a_5xx_is_retried_a_4xx_is_final_and_a_refused_signature_is_kept(served):
    app, mailroom = served
    _, external_id = open_ticket(served)
    deliver(app)
    mailroom.client.set_faults(fail_next=1, fail_status=503)
    reply(app, external_id, "first", "h-1")
    deliver(app)
    [assigned] = deliveries(app, action="event")
    assert (assigned.status, assigned.last_status_code) == ("pending", 503)
    wait_until(lambda: deliver(app) and all(d.status == "done" for d in deliveries(app)),
               what="the 503 retried until done")
    assert [m["text"] for m in sent_to_child(mailroom)] == [ASSIGNED, "first"]

    mailroom.client.set_faults(fail_next=1, fail_status=400)
    reply(app, external_id, "second", "h-2")
    deliver(app)
    failed = deliveries(app)[-1]
    assert (failed.status, failed.last_status_code, failed.attempts) == ("failed", 400, 1)
    with app.app_context():
        assert db.session.execute(db.select(Message).filter_by(sender_message_id="h-2")
                                  ).scalar_one().status == "failed"

    mailroom.client.configure(webhook_secret="rotated-at-the-platform")
    reply(app, external_id, "third", "h-3")
    deliver(app)
    kept = deliveries(app)[-1]
    assert (kept.status, kept.last_status_code) == ("pending", 401)
    assert kept.due_at > utcnow() + timedelta(seconds=30)  # a site problem: not hammered
    assert [m["text"] for m in sent_to_child(mailroom)] == [ASSIGNED, "first"]


def test_no_counsellor_tells_the_child_and_closes_the_ticket(served):
    app, mailroom = served
    ticket, external_id = open_ticket(served)
    with app.app_context():
        conversation = db.session.get(Conversation, external_id)
        protocol.no_counsellor(conversation, protocol.site_of(conversation))
        commit()
    deliver(app)

    [told] = sent_to_child(mailroom)
    assert told["text"] == WeniSettings.no_counsellor_text
    assert told["sender"]["type"] == "system"
    # The close callback was echoed back to us while it waited, and answered 409.
    echo = [c for c in mailroom.client.records("outbound") if c["operation"] == "close_echo"]
    assert [c["status"] for c in echo] == [409]
    assert mailroom.client.records("tickets")[-1]["status"] == "closed"
    assert [(d.params["event"], d.status) for d in deliveries(app)] == [
        ("no_counsellor", "done"), ("closed", "done")]


def test_still_waiting_tells_the_child_nobody_forgot_them(served):
    app, mailroom = served
    _, external_id = open_ticket(served)
    with app.app_context():
        conversation = db.session.get(Conversation, external_id)
        protocol.still_waiting(conversation, protocol.site_of(conversation), utcnow())
        commit()
    deliver(app)
    [told] = sent_to_child(mailroom)
    assert (told["text"], told["sender"]["type"]) == (WeniSettings.still_waiting_text, "system")
    assert mailroom.client.records("tickets")[-1]["status"] == "open"


def test_the_system_messages_are_in_the_childs_language_with_the_default_as_fallback(served):
    """The ticket's contact.language (ISO 639-3) picks the [texts] table; a text the
    language lacks is the default language's ([chatbot.weni]'s, for a site written
    before [texts])."""
    app, mailroom = served
    _, swahili = open_ticket(served, uuid="c-swa", language="swa")
    _, french = open_ticket(served, uuid="c-fra", language="fra")
    with app.app_context():
        assert db.session.get(Conversation, swahili).language == "swa"
        for external_id in (swahili, french):
            conversation = db.session.get(Conversation, external_id)
            protocol.still_waiting(conversation, protocol.site_of(conversation), utcnow())
            protocol.assign(conversation, "counsellor-amani", "test")
        commit()
    deliver(app)
    told: dict[str, list[str]] = {}
    for message in sent_to_child(mailroom):
        told.setdefault(message["contact_uuid"], []).append(message["text"])
    assert told == {"c-swa": [STILL_SWA, ASSIGNED],
                    "c-fra": [WeniSettings.still_waiting_text, ASSIGNED]}


def test_a_ticket_whose_contact_language_is_junk_is_refused_naming_the_field(served):
    import requests

    app, mailroom = served
    opened = requests.post(f"{mailroom.url}/_sandbox/tickets/open", timeout=30, json={
        "contact": {"urns": ["whatsapp:254700000001"], "language": "Swahili"},
        "body": "high risk"}).json()
    assert not opened["ok"]
    assert "contact.language" in str(opened)
    with app.app_context():
        assert db.session.execute(db.select(Conversation)).first() is None


def test_each_callback_outcome_is_committed_before_the_next_call(served):
    """Mailroom does not deduplicate: an outcome waits for no batch to commit."""
    app, mailroom = served
    _, first = open_ticket(served, uuid="c-first")
    _, second = open_ticket(served, uuid="c-second")
    deliver(app)
    reply(app, first, "to the first child", "h-1")
    reply(app, second, "to the second child", "h-2")
    mailroom.client.set_faults(slow=1.0)
    seen = []
    worker = threading.Thread(target=deliver, args=(app,))
    worker.start()
    try:
        wait_until(lambda: seen.append([d.status for d in deliveries(app, action="message")])
                   or seen[-1] == ["done", "sending"], timeout=15,
                   what="the first reply committed while the second is on its way")
    finally:
        worker.join(timeout=30)
        mailroom.client.set_faults(slow=0)
    assert [d.status for d in deliveries(app, action="message")] == ["done", "done"]


# ---- the site table ------------------------------------------------------------------------

def test_the_webhook_secret_must_be_an_environment_reference(tmp_path, monkeypatch):
    monkeypatch.delenv(SECRET_ENV, raising=False)
    known = _kinds()

    def site(folder: str, weni: dict):
        path = write_site(tmp_path / folder, "ke", name="Kenya", plugin="loopback",
                          helpline={"url": "http://127.0.0.1:9/"}, chatbot={"weni": weni})
        return load_site_file(path, known, DefaultConfig.RESULT_KEYS)

    with pytest.raises(SiteConfigError, match="chatbot.weni.webhook_secret: must be a"):
        site("literal", {"webhook_secret": "plain-text-secret"})
    with pytest.raises(SiteConfigError, match="chatbot.weni.webhook_secret: required"):
        site("missing", {})
    unset = site("unset", {"webhook_secret": "${" + SECRET_ENV + "}"})
    # Unset: the site's callbacks are held (kept, never sent), and `sites check` says why.
    assert unset.problem_for("chatbot") == \
        "site config incomplete: chatbot.weni.webhook_secret unset"
    assert unset.weni.webhook_secret is None


def _kinds():
    import tempfile

    from adapter import create_app
    from adapter.state import state_of
    from tests.support import loopback_plugin

    app = create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://", "SECRET_KEY": "t",
                      "COUNTRIES_DIR": tempfile.mkdtemp(), "LOG_LEVEL": "ERROR"},
                     plugins=(loopback_plugin,))
    return state_of(app).kinds
