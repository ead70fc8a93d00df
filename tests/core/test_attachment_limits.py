"""A site's ``[attachments]`` limits: a refused attachment is named, the rest of the
message is accepted, durable and on its way, and a repeat changes nothing.

The 422 carries the accepted message's id, so a bot that reads only the status still
learns its text got through (``accepted``). Run over SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import pytest

from adapter.extensions import db
from adapter.models import Conversation, Delivery, Message
from adapter.sites import SiteConfigError, load_site_file
from plugins.api import HelplineKind
from tests.support.loopback_plugin import KIND as LOOPBACK
from tests.support.loopback_plugin import LoopbackClient, LoopbackConfig
from tests.support.sites import write_site

from .conftest import counts, start

LIMITS = {"max_count": 2, "allowed_types": ["image/*", "audio/ogg"]}


@pytest.fixture
def app(app_factory, countries_dir):
    write_site(countries_dir, "lm", name="Limited media", plugin=LOOPBACK,
               routing={"locations": ["Limitland"]},
               helpline={"url": "http://127.0.0.1:9/helpline-lm"}, attachments=LIMITS)
    return app_factory()


@pytest.fixture
def conversation_id(client, auth) -> str:
    return start(client, auth, {"conversation_id": "conv-lm", "site": "lm",
                                "contact": {"uuid": "c-lm"}})["conversation_id"]


def _messages(app, external_id: str) -> list[Message]:
    with app.app_context():
        conversation = db.session.execute(
            db.select(Conversation).where(Conversation.external_id == external_id)
        ).scalar_one()
        found = db.session.execute(
            db.select(Message).where(Message.conversation_id == conversation.id)
            .order_by(Message.seq)).scalars().all()
        db.session.expunge_all()
        return list(found)


def _message_deliveries(app, message_id: str) -> int:
    with app.app_context():
        return len(db.session.execute(
            db.select(Delivery).where(Delivery.message_id == message_id)).scalars().all())


BODY = {"message_id": "m-video", "text": "look at this",
        "attachments": ["image/jpeg:https://media.example.org/a.jpg",
                        "video/mp4:https://media.example.org/b.mp4",
                        "audio/ogg:https://media.example.org/c.ogg",
                        "image/png:https://media.example.org/d.png"]}


def test_a_refused_attachment_is_a_422_naming_it_and_the_rest_is_accepted(app, client, auth,
                                                                          conversation_id):
    response = client.post(f"/v1/conversations/{conversation_id}/messages", json=BODY,
                           headers=auth)

    assert response.status_code == 422, response.json
    out = response.json
    assert out["code"] == "attachments_refused"
    assert out["errors"] == {
        "attachments.1": ["content type video/mp4 is not accepted at this site"],
        "attachments.3": ["at most 2 attachments per message at this site"]}
    [message] = _messages(app, conversation_id)
    assert out["accepted"]["message_id"] == message.id
    assert out["accepted"]["sender_message_id"] == "m-video"
    assert message.text == "look at this"
    assert message.attachments == ["image/jpeg:https://media.example.org/a.jpg",
                                   "audio/ogg:https://media.example.org/c.ogg"]
    assert _message_deliveries(app, message.id) == 1  # on its way to the helpline


def test_a_repeat_gets_the_same_422_and_stores_nothing_twice(app, client, auth,
                                                             conversation_id):
    path = f"/v1/conversations/{conversation_id}/messages"
    first = client.post(path, json=BODY, headers=auth)
    before = counts(app)
    again = client.post(path, json=BODY, headers=auth)

    assert (again.status_code, again.json) == (first.status_code, first.json)
    assert counts(app) == before


def test_a_repeat_by_idempotency_key_replays_the_422(app, client, auth, conversation_id):
    path = f"/v1/conversations/{conversation_id}/messages"
    headers = {**auth, "Idempotency-Key": "key-video"}
    body = {key: value for key, value in BODY.items() if key != "message_id"}
    first = client.post(path, json=body, headers=headers)
    before = counts(app)
    again = client.post(path, json=body, headers=headers)

    assert first.status_code == again.status_code == 422
    assert again.json == first.json
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert counts(app) == before


def test_only_refused_attachments_and_no_text_stores_nothing(app, client, auth,
                                                             conversation_id):
    before = counts(app)
    response = client.post(f"/v1/conversations/{conversation_id}/messages", headers=auth,
                           json={"message_id": "m-pdf", "input": {"attachments": [
                               "application/pdf:https://media.example.org/x.pdf"]}})

    assert response.status_code == 422
    assert response.json["errors"] == {
        "input.attachments.0": ["content type application/pdf is not accepted at this site"]}
    assert response.json["accepted"] is None
    assert counts(app) == before


def test_a_type_guessed_from_the_url_is_checked_too(app, client, auth, conversation_id):
    response = client.post(f"/v1/conversations/{conversation_id}/messages", headers=auth,
                           json={"message_id": "m-guess", "text": "see",
                                 "attachments": ["https://media.example.org/clip.mp4",
                                                 "https://media.example.org/no-extension"]})

    assert response.status_code == 422
    assert list(response.json["errors"]) == ["attachments.0"]
    [message] = _messages(app, conversation_id)
    assert message.attachments == ["https://media.example.org/no-extension"]


def test_a_start_with_a_refused_attachment_still_escalates_and_says_why(app, client, auth):
    out = start(client, auth, {"conversation_id": "conv-lm-start", "site": "lm",
                               "contact": {"uuid": "c-lm-2"}, "text": "help me",
                               "attachments": ["video/mp4:https://media.example.org/v.mp4",
                                               "image/jpeg:https://media.example.org/p.jpg"]})

    assert out["state"] == "requested"
    assert out["attachment_errors"] == {
        "attachments.0": ["content type video/mp4 is not accepted at this site"]}
    [message] = _messages(app, "conv-lm-start")
    assert (message.text, message.attachments) == (
        "help me", ["image/jpeg:https://media.example.org/p.jpg"])


def test_the_default_limits_take_what_whatsapp_and_telegram_send(app, client, auth):
    media = ["image/jpeg:https://m.example/a.jpg", "image/webp:https://m.example/sticker.webp",
             "audio/ogg:https://m.example/voice.ogg", "video/mp4:https://m.example/v.mp4",
             "application/pdf:https://m.example/d.pdf",
             "application/vnd.openxmlformats-officedocument.wordprocessingml.document:"
             "https://m.example/d.docx"]
    out = start(client, auth, {"conversation_id": "conv-lb-media", "site": "lb",
                               "contact": {"uuid": "c-lb-media"}, "attachments": media})

    assert "attachment_errors" not in out
    [message] = _messages(app, "conv-lb-media")
    assert message.attachments == media


@pytest.mark.parametrize(("table", "problem"), [
    ({"max_count": 11}, "attachments.max_count"),
    ({"allowed_types": ["Image/*"]}, "attachments.allowed_types.0"),
    ({"allowed_types": ["image"]}, "attachments.allowed_types.0"),
    ({"refuse_unknown": True}, "attachments.refuse_unknown"),
    ({"rehost": {"enabled": True, "public_url": "https://a.example/v1/media/x/"}},
     "attachments.rehost.directory: required when enabled"),
    ({"rehost": {"enabled": True, "directory": "/tmp/x"}},
     "attachments.rehost.public_url: required when enabled"),
    ({"rehost": {"store": "ftp"}}, "attachments.rehost.store"),
    ({"rehost": {"unsafe_allow_private_hosts": ["10.0.0.0/8"]}},
     "attachments.rehost.unsafe_allow_private_hosts.0"),
    ({"rehost": {"max_bytes": 0}}, "attachments.rehost.max_bytes"),
])
def test_a_bad_attachments_table_stops_start_up_naming_file_and_key(tmp_path, table, problem):
    path = write_site(tmp_path, "bad", name="Bad", plugin=LOOPBACK,
                      helpline={"url": "http://127.0.0.1:9/"}, attachments=table)
    kinds = {LOOPBACK: HelplineKind(name=LOOPBACK, config_schema=LoopbackConfig,
                                    client=LoopbackClient)}
    with pytest.raises(SiteConfigError) as raised:
        load_site_file(path, kinds, {})
    assert str(path) in str(raised.value) and problem in str(raised.value)


def test_rehosting_is_off_unless_a_site_turns_it_on(tmp_path):
    path = write_site(tmp_path, "plain", name="Plain", plugin=LOOPBACK,
                      helpline={"url": "http://127.0.0.1:9/"})
    kinds = {LOOPBACK: HelplineKind(name=LOOPBACK, config_schema=LoopbackConfig,
                                    client=LoopbackClient)}
    site = load_site_file(path, kinds, {})
    assert site.attachments.rehost.enabled is False
    assert site.attachments.max_count == 10


def test_sites_check_names_the_rehost_directory_and_the_private_hosts_allowed(
        app_factory, countries_dir, tmp_path):
    media = tmp_path / "media-rh"
    write_site(countries_dir, "rh", name="Re-hosting", plugin=LOOPBACK,
               routing={"locations": ["Rehostville"]},
               helpline={"url": "http://127.0.0.1:9/helpline-rh"},
               attachments={"rehost": {"enabled": True, "directory": str(media),
                                       "public_url": "https://adapter.example/v1/media/rh/",
                                       "unsafe_allow_private_hosts": ["127.0.0.1:8765"]}})
    result = app_factory().test_cli_runner().invoke(args=["sites", "check", "rh"])

    lines = [line for line in result.output.splitlines() if "rehost" in line]
    assert lines == [
        f"rh: rehost ok directory {media} is writable",
        "rh: rehost WARNING unsafe_allow_private_hosts lets downloads reach private "
        "addresses: 127.0.0.1:8765 (tests and the local sandbox only)"]


def test_a_flow_start_never_exceeds_rapidpros_params_limit_for_its_links(app, tmp_path):
    """Ten long links twice over (typed, and bare) would pass RapidPro's 10,000
    characters and be refused for good: the bare copies are left out, never the message."""
    import json

    from adapter.dialects.rapidpro_api.outbound import MAX_PARAMS_CHARS, build_request
    from adapter.models import Conversation, Delivery, Message

    path = write_site(tmp_path, "fs", name="Flow starts", plugin=LOOPBACK,
                      helpline={"url": "http://127.0.0.1:9/"},
                      rapidpro={"base_url": "http://127.0.0.1:9/", "token": "t",
                                "message_mode": "flow_starts",
                                "flows": {"message": "5f0e0000-0000-4000-8000-000000000001"}})
    kinds = {LOOPBACK: HelplineKind(name=LOOPBACK, config_schema=LoopbackConfig,
                                    client=LoopbackClient)}
    site = load_site_file(path, kinds, {})
    links = [f"image/png:https://files.example/{n}/" + "a" * 600 + ".png" for n in range(10)]
    with app.app_context():
        conversation = Conversation(id="s-1", external_id="c-1", contact_uuid="u-1")
        message = Message(id="m-1", text="see", sender="counsellor-1", attachments=links)
        delivery = Delivery(params={"event": "message", "message_id": "m-1"})
        endpoint, body = build_request(site, delivery, conversation, message)

    assert endpoint == "flow_starts.json"
    assert body["params"]["attachments"] == links
    assert "attachment_urls" not in body["params"]
    assert len(json.dumps(body["params"])) <= MAX_PARAMS_CHARS
