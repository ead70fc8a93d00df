"""Every RapidPro body shape is accepted, and the conversation id is derived as documented."""

from __future__ import annotations

from adapter.extensions import db
from adapter.models import Conversation, Delivery, Message
from tests.conftest import make_client
from tests.support.sites import write_site

from .conftest import CONTACT_UUID, NAME, URN, counts, default_body, rows, start

RUN_UUID = "0d3f7c52-6a8e-4f0b-9b1c-5e2a7d4c9f10"
INPUT_UUID = "b6a1e0c4-3d2f-4e9a-8c7b-1f0e9d8c7b6a"


def legacy_body(**overrides) -> dict:
    """The resthook/legacy body: the default one plus ``path``, ``run``, ``input``, ``channel``."""
    body = {
        "contact": {"uuid": CONTACT_UUID, "name": NAME, "urn": URN},
        "flow": {"uuid": "f0a4a8d2-4f0e-4c4e-8a51-2b5c34e6c001", "name": "Escalate"},
        "path": [{"node": "n1", "time": "2024-05-01T10:00:00.000Z"}],
        "results": {"location": {"value": "Nairobi", "category": "Nairobi",
                                 "node_uuid": "n1", "input": "Nairobi"}},
        "run": {"uuid": RUN_UUID, "created_on": "2024-05-01T10:00:00.000Z"},
        "input": {
            "uuid": INPUT_UUID, "type": "msg", "urn": URN,
            "channel": {"uuid": "c-1", "name": "WhatsApp"},
            "text": "please help me",
            "attachments": ["image/jpeg:https://media.example.org/photo.jpg"],
            "created_on": "2024-05-01T10:00:01.000Z",
        },
        "channel": {"uuid": "c-1", "name": "WhatsApp"},
    }
    body.update(overrides)
    return body


def _conversation(app, conversation_id):
    with app.app_context():
        conversation = db.session.execute(
            db.select(Conversation).where(Conversation.external_id == conversation_id)
        ).scalar_one()
        messages = db.session.execute(
            db.select(Message).where(Message.conversation_id == conversation.id)
        ).scalars().all()
        deliveries = db.session.execute(
            db.select(Delivery).where(Delivery.conversation_id == conversation.id)
            .order_by(Delivery.id)
        ).scalars().all()
        db.session.expunge_all()
        return conversation, messages, deliveries


def test_default_call_webhook_body_starts_a_conversation_with_its_first_message(app, client, auth):
    out = start(client, auth, default_body())

    assert out["site"] == "lb" and out["state"] == "requested"
    assert out["client"].startswith("client-")
    conversation, messages, deliveries = _conversation(app, out["conversation_id"])
    assert conversation.contact_uuid == CONTACT_UUID
    assert conversation.location == "Nairobi"
    assert conversation.flow_uuid == "f0a4a8d2-4f0e-4c4e-8a51-2b5c34e6c001"
    assert [m.text for m in messages] == ["I need to talk to someone"]
    assert [(d.target, d.action) for d in deliveries] == [("helpline", "open"),
                                                          ("helpline", "message")]


def test_contact_name_is_never_stored(app, client, auth):
    out = start(client, auth, default_body())

    conversation, messages, _ = _conversation(app, out["conversation_id"])
    stored = [str(v) for obj in [conversation, *messages] for v in vars(obj).values()]
    assert not [v for v in stored if NAME in v]


def test_resthook_body_uses_run_uuid_input_text_and_attachments(app, client, auth):
    out = start(client, auth, legacy_body())

    assert out["conversation_id"] == RUN_UUID
    conversation, messages, _ = _conversation(app, RUN_UUID)
    assert conversation.run_uuid == RUN_UUID
    assert [(m.text, m.sender_message_id, m.attachments) for m in messages] == [
        ("please help me", INPUT_UUID, ["image/jpeg:https://media.example.org/photo.jpg"])]


def test_explicit_fields_win_and_route_by_site(app, client, auth):
    body = {"conversation_id": "weni-session-42", "contact": {"urn": "tel:+256700000001"},
            "site": "lb", "location": "Kampala", "risk": "high", "text": "explicit words",
            "message_id": "weni-msg-1"}

    out = start(client, auth, body)

    assert (out["conversation_id"], out["site"]) == ("weni-session-42", "lb")
    conversation, messages, _ = _conversation(app, "weni-session-42")
    assert (conversation.risk, conversation.location) == ("high", "Kampala")
    assert [(m.text, m.sender_message_id) for m in messages] == [("explicit words", "weni-msg-1")]


def test_start_routes_by_location_then_urn_prefix(client, auth):
    by_location = start(client, auth, default_body(
        contact={"uuid": "u-1", "urn": "tel:+254700000009"},
        results={"location": {"value": "kampala", "category": "Kampala"}}))
    by_urn = start(client, auth, {"contact": {"uuid": "u-2", "urn": "tel:+256700000009"}})

    assert by_location["site"] == "ug"
    assert by_urn["site"] == "ug"


def test_every_body_shape_is_accepted_for_a_message(app, client, auth):
    cid = start(client, auth, {"conversation_id": "conv-shapes", "site": "lb"})["conversation_id"]
    bodies = [
        {"message_id": "m-explicit", "text": "explicit"},
        {"contact": {"uuid": CONTACT_UUID, "name": NAME, "urn": URN}, "flow": {"uuid": "f"},
         "results": {"message": {"value": "from results", "category": "All"},
                     "message_id": {"value": "m-results", "category": "All"}}},
        legacy_body(input={"uuid": "m-input", "type": "msg", "text": "from input",
                           "attachments": [], "created_on": "2024-05-01T10:00:02Z"}),
    ]
    for body in bodies:
        response = client.post(f"/v1/conversations/{cid}/messages", json=body, headers=auth)
        assert response.status_code == 202, response.json

    _, messages, _ = _conversation(app, cid)
    assert sorted((m.sender_message_id, m.text) for m in messages) == [
        ("m-explicit", "explicit"), ("m-input", "from input"), ("m-results", "from results")]


def test_result_keys_are_configurable(app_factory):
    keys = {"conversation_id": ["session"], "text": ["story"], "location": ["county"],
            "risk": ["danger"], "message_id": ["msg_ref"]}
    app = app_factory(RESULT_KEYS=keys)
    auth = {"Authorization": f"Token {make_client(app)}"}
    body = {"contact": {"uuid": "u-9"}, "results": {
        "session": {"value": "s-77", "category": "All"},
        "story": {"value": "configured text", "category": "All"},
        "county": {"value": "Kampala", "category": "Kampala"},
        "danger": {"value": "severe", "category": "High"},
        "msg_ref": {"value": "r-1", "category": "All"},
        "location": {"value": "Nairobi", "category": "Nairobi"}}}

    out = start(app.test_client(), auth, body)

    assert (out["conversation_id"], out["site"]) == ("s-77", "ug")
    conversation, messages, _ = _conversation(app, "s-77")
    assert conversation.risk == "severe"
    assert [(m.text, m.sender_message_id) for m in messages] == [("configured text", "r-1")]


def test_a_partial_result_keys_setting_keeps_the_defaults_for_the_rest(app_factory):
    app = app_factory(RESULT_KEYS={"location": ["county"]})
    auth = {"Authorization": f"Token {make_client(app)}"}
    body = {"contact": {"uuid": "u-9"}, "results": {
        "county": {"value": "Kampala", "category": "Kampala"},
        "message": {"value": "default text key", "category": "All"}}}

    out = start(app.test_client(), auth, body)

    assert out["site"] == "ug"
    _, messages, _ = _conversation(app, out["conversation_id"])
    assert [m.text for m in messages] == ["default text key"]


def test_a_site_file_can_name_its_own_result_keys(app_factory, tmp_path):
    folder = tmp_path / "site-keys"
    write_site(folder, "tz", name="Tanzania", plugin="loopback",
               routing={"locations": ["Dodoma"], "urn_prefixes": ["tel:+255"]},
               helpline={"url": "http://127.0.0.1:9/tz"},
               result_keys={"text": ["hadithi"], "location": ["mkoa"], "risk": ["hatari"]})
    write_site(folder, "lb", name="Loopback", plugin="loopback",
               routing={"locations": ["Nairobi"]}, helpline={"url": "http://127.0.0.1:9/lb"})
    app = app_factory(countries=folder)
    client = app.test_client()
    auth = {"Authorization": f"Token {make_client(app)}"}

    by_urn = start(client, auth, {"contact": {"uuid": "u-tz", "urn": "tel:+255700000001"},
                                  "results": {"hadithi": {"value": "site text"},
                                              "hatari": {"value": "high"}}})
    by_site_key = start(client, auth, {"contact": {"uuid": "u-tz2"},
                                       "results": {"mkoa": {"value": "Dodoma"}}})
    message = client.post(f"/v1/conversations/{by_urn['conversation_id']}/messages",
                          json={"results": {"hadithi": {"value": "second"}},
                                "message_id": "tz-2"}, headers=auth)

    assert (by_urn["site"], by_site_key["site"]) == ("tz", "tz")
    assert message.status_code == 202, message.json
    conversation, messages, _ = _conversation(app, by_urn["conversation_id"])
    assert conversation.risk == "high"
    assert sorted(m.text for m in messages) == ["second", "site text"]


# ---- the conversation id, when the chatbot does not give one --------------------------

def test_conversation_id_is_the_run_uuid(client, auth):
    out = start(client, auth, legacy_body())
    assert out["conversation_id"] == RUN_UUID


def test_conversation_id_is_the_idempotency_key_without_run(client, auth):
    out = start(client, auth, default_body(), headers={"Idempotency-Key": "idem-start-1"})
    assert out["conversation_id"] == "idem-start-1"


def test_a_contacts_open_conversation_is_reused(app, client, auth):
    first = start(client, auth, default_body())
    before = counts(app)

    again = start(client, auth, default_body(), expect=200)

    assert again["conversation_id"] == first["conversation_id"]
    assert counts(app) == before


def test_otherwise_a_new_id_is_made_and_returned(app, client, auth):
    first = start(client, auth, default_body())
    other = start(client, auth, default_body(contact={"uuid": "another-contact"}))
    anonymous = start(client, auth, {"site": "lb", "text": "no contact"})

    ids = {first["conversation_id"], other["conversation_id"], anonymous["conversation_id"]}
    assert len(ids) == 3
    assert anonymous["conversation_id"] == anonymous["id"]
    assert rows(app, Conversation) == 3


def test_a_closed_conversation_is_not_reused_for_the_contact(client, auth):
    first = start(client, auth, default_body())
    closed = client.post(f"/v1/conversations/{first['conversation_id']}/close", headers=auth)
    assert closed.status_code == 200

    again = start(client, auth, default_body())

    assert again["conversation_id"] != first["conversation_id"]

