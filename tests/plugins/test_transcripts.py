"""The transcript goes with the case (``[policies] transcript_to_case``), over real HTTP
against the sandbox OpenCHS helpline: at a close, the conversation's transcript —
pseudonyms only, timestamps, attachment links — is written into the case the
conversation opened (``POST cases/<id>``), after the case exists, once per close, and
never after retention purged the text."""

from __future__ import annotations

import pytest

from adapter.delivery.engine import drain
from adapter.extensions import db
from adapter.models import Delivery

from .conftest import openchs_site, served_world

CONTACT = {"uuid": "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d", "name": "Wanjiru Kamau",
           "urn": "tel:+254711222333"}
NARRATIVE = "my uncle hits me"


@pytest.fixture
def world(app_factory, helpline, tmp_path, openchs_env, serve):
    def make(transcript: bool = True, retention_days: int = 30, reopen_within: int = 0):
        folder = tmp_path / f"countries-{transcript}-{retention_days}-{reopen_within}"
        path = openchs_site(folder, "ke", helpline.api_url,
                            case={"default_category": "362557"})
        path.write_text(path.read_text() + "\n[policies]\n"
                        f"transcript_to_case = {'true' if transcript else 'false'}\n"
                        f"retention_days = {retention_days}\n"
                        f"reopen_within = {reopen_within}\n")
        return served_world(app_factory, helpline, serve, folder)

    return make


def deliver(app) -> None:
    with app.app_context():
        result = drain(app)
        assert result.unexpected is None


def chat_with_a_case(client, auth, app, sandbox) -> str:
    started = client.post("/v1/conversations", headers=auth, json={
        "site": "ke", "contact": CONTACT, "text": "please help",
        "intake": {"narrative": NARRATIVE, "age": 12}})
    assert started.status_code == 201, started.json
    session_id = started.json["id"]
    assert client.post(f"/v1/conversations/{session_id}/messages", headers=auth, json={
        "text": "he is home now", "attachments": ["image/jpeg:https://media.example/p1.jpg"],
    }).status_code == 202
    deliver(app)
    assert sandbox.counsellor("reply", session_id=session_id, text="Are you safe?",
                              counsellor="counsellor-amani")["ok"]
    return session_id


def transcript_updates(sandbox) -> list[dict]:
    return [u for u in sandbox.records("updates") if u["resource"] == "cases"]


def test_a_closed_conversation_leaves_its_transcript_in_the_case(world):
    app, client, auth, sandbox = world()
    session_id = chat_with_a_case(client, auth, app, sandbox)
    [case] = sandbox.records("cases")
    assert transcript_updates(sandbox) == []  # not before the close

    assert client.post(f"/v1/conversations/{session_id}/close", headers=auth,
                       json={}).status_code == 200
    deliver(app)

    [update] = transcript_updates(sandbox)
    assert update["id"] == case["id"]
    narrative = update["body"]["narrative"]
    assert set(update["body"]) == {"narrative"}
    assert narrative.startswith(NARRATIVE + "\n\n--- Chat transcript (session "
                                + session_id + ") ---")
    lines = narrative.splitlines()[3:]
    pseudonym = sandbox.records("messages")[0]["from"]
    assert lines[0].endswith(f"{pseudonym}: please help")
    assert lines[1].endswith(f"{pseudonym}: he is home now")
    assert lines[2].strip().endswith("https://media.example/p1.jpg")  # a link, not fetched
    assert lines[3].endswith("counsellor-amani: Are you safe?")
    assert all(line.startswith("[20") for line in (lines[0], lines[1], lines[3]))
    # Pseudonyms only: no name, no phone number.
    assert "Wanjiru" not in narrative and "711222333" not in narrative
    # The helpline's own copy of the case now says so too.
    [stored] = sandbox.records("cases")
    assert stored["body"]["narrative"] == narrative


def test_a_second_close_after_a_return_leaves_one_transcript_of_the_whole_chat(world):
    """Each close sends the transcript again (its own id, ``<session>/<returns>``); an
    update replaces the field, so the case holds one transcript, never two copies."""
    app, client, auth, sandbox = world(reopen_within=3600)
    session_id = chat_with_a_case(client, auth, app, sandbox)
    client.post(f"/v1/conversations/{session_id}/close", headers=auth, json={})
    deliver(app)
    back = client.post(f"/v1/conversations/{session_id}/messages", headers=auth,
                       json={"text": "it happened again"})
    assert back.status_code == 202
    client.post(f"/v1/conversations/{session_id}/close", headers=auth, json={})
    deliver(app)

    first, second = transcript_updates(sandbox)
    assert "it happened again" not in first["body"]["narrative"]
    assert second["body"]["narrative"].endswith(": it happened again")
    [stored] = sandbox.records("cases")
    assert stored["body"]["narrative"].count("--- Chat transcript") == 1
    assert stored["body"]["narrative"].startswith(NARRATIVE + "\n\n")
    with app.app_context():
        ids = [d.params["transcript_id"] for d in db.session.execute(
            db.select(Delivery).where(Delivery.action == "transcript")
            .order_by(Delivery.id)).scalars()]
    assert ids == [f"{session_id}/0", f"{session_id}/1"]


def test_no_transcript_unless_the_site_opts_in(world):
    app, client, auth, sandbox = world(transcript=False)
    session_id = chat_with_a_case(client, auth, app, sandbox)
    client.post(f"/v1/conversations/{session_id}/close", headers=auth, json={})
    deliver(app)

    assert transcript_updates(sandbox) == []
    with app.app_context():
        assert db.session.execute(db.select(Delivery).where(
            Delivery.action == "transcript")).first() is None


def test_a_conversation_without_a_case_sends_no_transcript(world):
    app, client, auth, sandbox = world()
    started = client.post("/v1/conversations", headers=auth, json={
        "site": "ke", "contact": CONTACT, "text": "hi"}).json
    deliver(app)
    client.post(f"/v1/conversations/{started['id']}/close", headers=auth, json={})
    deliver(app)

    assert transcript_updates(sandbox) == []


def test_text_purged_by_retention_is_never_sent(world):
    app, client, auth, sandbox = world(retention_days=0)
    session_id = chat_with_a_case(client, auth, app, sandbox)
    client.post(f"/v1/conversations/{session_id}/close", headers=auth, json={})
    with app.app_context():  # as the CLI's own group runs it
        purged = app.test_cli_runner().invoke(args=["purge"])
    assert purged.exit_code == 0, purged.output

    deliver(app)

    assert transcript_updates(sandbox) == []
    with app.app_context():
        delivery = db.session.execute(db.select(Delivery).where(
            Delivery.action == "transcript")).scalar_one()
        assert delivery.status == "failed"
        assert "purged by retention" in delivery.last_error
