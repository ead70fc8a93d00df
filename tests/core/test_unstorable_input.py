"""Bad input is a 400 naming the field, never "database unavailable".

Each of these once reached the database: PostgreSQL refused it (a 503 with Retry-After,
so Weni retried a message that could never be accepted, for ever), SQLite stored it, or
the driver could not encode it (a 500). Attachments were forwarded as links whatever
their scheme. Run over SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from adapter.extensions import db
from adapter.models import Conversation, Message

from .conftest import counts, default_body, start
from .test_errors import error_of


@pytest.fixture
def conversation_id(client, auth) -> str:
    return start(client, auth, {"conversation_id": "conv-unstorable", "site": "lb",
                                "contact": {"uuid": "c-unstorable"}})["conversation_id"]


def refused(app, client, auth, body, field: str, path: str = "/v1/conversations",
            headers: dict | None = None) -> dict:
    """Posted, answered 400 ``invalid_request`` naming ``field``, and nothing stored."""
    before = counts(app)
    response = client.post(path, json=body, headers={**auth, **(headers or {})})
    out = error_of(response, 400, "invalid_request")
    assert field in out["errors"], out
    assert counts(app) == before
    return out


def _stored(app, external_id: str) -> tuple[Conversation, list[Message]]:
    with app.app_context():
        conversation = db.session.execute(
            db.select(Conversation).where(Conversation.external_id == external_id)
        ).scalar_one()
        messages = db.session.execute(
            db.select(Message).where(Message.conversation_id == conversation.id)
            .order_by(Message.seq)).scalars().all()
        db.session.expunge_all()
        return conversation, list(messages)


# ---- characters no column can store ------------------------------------------------

def test_a_nul_in_the_text_is_400_naming_it(app, client, auth):
    refused(app, client, auth, {"site": "lb", "text": "help\x00me"}, "text")


def test_a_nul_in_the_contact_urn_is_400_naming_it(app, client, auth):
    body = default_body(contact={"uuid": "c-1", "urn": "tel:+254\x00711"})
    refused(app, client, auth, body, "contact.urn")


def test_a_nul_in_a_result_value_is_400_naming_its_path(app, client, auth):
    body = default_body()
    body["results"]["risk"] = {"value": "hi\x00gh", "category": "High"}
    refused(app, client, auth, body, "results.risk.value")


def test_a_nul_in_a_message_or_a_query_is_400(app, client, auth, conversation_id):
    refused(app, client, auth, {"message_id": "m-nul", "text": "a\x00"}, "text",
            path=f"/v1/conversations/{conversation_id}/messages")
    response = client.get(f"/v1/conversations/{conversation_id}?include_text=%00", headers=auth)
    assert "include_text" in error_of(response, 400, "invalid_request")["errors"]


@pytest.mark.parametrize("where", ["text", "results.message.value", "key"])
def test_a_lone_surrogate_sent_as_a_json_escape_is_400(app, client, auth, where):
    """``"\\ud800"`` is valid JSON and decodes to half a surrogate pair: no UTF-8 for it."""
    if where == "text":
        raw, field = '{"site": "lb", "text": "a\\ud800b"}', "text"
    elif where == "key":
        raw, field = '{"site": "lb", "text": "x", "results": {"\\udfff": 1}}', "results.\\udfff"
    else:
        raw = ('{"site": "lb", "results": {"message": {"value": "\\ud800", '
               '"category": "All Responses"}}}')
        field = "results.message.value"
    before = counts(app)
    response = client.post("/v1/conversations", data=raw, headers=auth,
                           content_type="application/json")
    out = error_of(response, 400, "invalid_request")
    assert field in out["errors"], out
    assert counts(app) == before


def test_a_nul_in_a_path_id_is_404_not_a_database_error(client, auth, conversation_id):
    for method, suffix, body in (("post", "/messages", {"message_id": "m", "text": "hi"}),
                                 ("post", "/close", {}), ("get", "", None)):
        response = getattr(client, method)(f"/v1/conversations/conv%00{suffix}", json=body,
                                           headers=auth)
        error_of(response, 404)


# ---- values read from results, longer than their column ------------------------------

@pytest.mark.parametrize(("key", "length"), [
    ("risk", 65),  # conversations.risk: 64
    ("conversation_id", 201),  # conversations.external_id: 200
    ("message_id", 201),  # messages.sender_message_id: 200
    ("location", 121),  # conversations.location: 120
    ("message", 10_001),  # the text limit
])
def test_an_overlong_result_value_is_400_naming_where_it_came_from(app, client, auth, key,
                                                                   length):
    body = default_body(contact={"uuid": "c-long"}, site="lb")
    body["results"][key] = {"value": "x" * length, "category": "All Responses"}
    out = refused(app, client, auth, body, f"results.{key}.value")
    assert f"results.{key}.value" in out["message"]


def test_a_result_value_as_long_as_its_column_is_stored(app, client, auth):
    body = default_body(contact={"uuid": "c-exact"}, site="lb")
    body["results"].update({"risk": {"value": "r" * 64}, "conversation_id": {"value": "c" * 200},
                            "message_id": {"value": "m" * 200}})
    start(client, auth, body)
    conversation, [message] = _stored(app, "c" * 200)
    assert conversation.risk == "r" * 64 and message.sender_message_id == "m" * 200


def test_an_overlong_plain_result_is_named_without_value(app, client, auth):
    body = default_body(contact={"uuid": "c-plain"}, site="lb")
    body["results"]["risk"] = "x" * 65  # a plain value, not {value, category}
    refused(app, client, auth, body, "results.risk")


def test_an_overlong_message_id_result_on_a_message_is_400(app, client, auth, conversation_id):
    body = {"results": {"message": {"value": "hi"}, "message_id": {"value": "m" * 201}}}
    refused(app, client, auth, body, "results.message_id.value",
            path=f"/v1/conversations/{conversation_id}/messages")


def test_an_overlong_case_id_result_is_400(app, client, auth):
    body = {"site": "lb", "results": {"case_id": {"value": "c" * 201},
                                      "narrative": {"value": "what happened"}}}
    refused(app, client, auth, body, "results.case_id.value", path="/v1/cases")


# ---- the Idempotency-Key -------------------------------------------------------------

@pytest.mark.parametrize("length", [201, 255])
def test_a_long_idempotency_key_is_accepted_as_a_stable_id(app, client, auth, length):
    """Without a conversation id of its own, a start takes the key's: one too long for the
    column becomes its digest, the same on every retry."""
    key = "k" * length
    digest = "idem:" + hashlib.sha256(key.encode()).hexdigest()
    body = {"site": "lb", "text": "hi", "contact": {"uuid": f"c-key-{length}"}}

    first = client.post("/v1/conversations", json=body, headers={**auth, "Idempotency-Key": key})
    again = client.post("/v1/conversations", json=body, headers={**auth, "Idempotency-Key": key})

    assert first.status_code == 201, first.json
    assert first.json["conversation_id"] == digest
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json == first.json
    message_key = "m" * length  # a message without an id of its own takes the key's too
    message = client.post(f"/v1/conversations/{digest}/messages", json={"text": "and then"},
                          headers={**auth, "Idempotency-Key": message_key})
    assert message.status_code == 202, message.json
    assert message.json["sender_message_id"] == \
        "idem:" + hashlib.sha256(message_key.encode()).hexdigest()


def test_a_long_idempotency_key_gives_a_case_a_stable_id(app, client, auth):
    key = "c" * 230
    body = {"site": "lb", "intake": {"narrative": "n"}}
    first = client.post("/v1/cases", json=body, headers={**auth, "Idempotency-Key": key})
    assert first.status_code == 202, first.json
    assert first.json["chatbot_case_id"] == "idem:" + hashlib.sha256(key.encode()).hexdigest()


@pytest.mark.parametrize(("key", "problem"), [
    ("k" * 256, "at most 255 characters"),
    ("clé-1", "printable ASCII characters only"),
    ("tab\there", "printable ASCII characters only"),
])
def test_an_idempotency_key_too_long_or_not_printable_ascii_is_400(app, client, auth, key,
                                                                   problem):
    out = refused(app, client, auth, {"site": "lb", "text": "hi"}, "Idempotency-Key",
                  headers={"Idempotency-Key": key})
    assert out["errors"]["Idempotency-Key"] == [problem]


# ---- attachments ---------------------------------------------------------------------

@pytest.mark.parametrize("attachment", [
    "file:///etc/passwd",
    "javascript:alert(1)",
    "image/jpeg:file:///etc/passwd",
    "image/jpeg:javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "https://",
    "https://host/" + "a" * 2048,
    "geo:91,0",
])
def test_an_attachment_that_is_not_a_web_link_is_400_naming_its_index(app, client, auth,
                                                                      attachment):
    body = default_body(input={"text": "look", "attachments": ["https://ok.example/a.jpg",
                                                               attachment]})
    refused(app, client, auth, body, "input.attachments.1")
    refused(app, client, auth, {"site": "lb", "attachments": [attachment]}, "attachments.0")


def test_attachments_in_rapidpros_form_are_stored_with_their_content_type(app, client, auth,
                                                                         conversation_id):
    body = default_body(conversation_id="conv-media", site="lb", attachments=[
        "image/jpeg:https://media.example.org/a.jpg", "https://media.example.org/b.ogg"])
    start(client, auth, body)
    response = client.post(f"/v1/conversations/{conversation_id}/messages", headers=auth,
                           json={"input": {"uuid": "in-1", "text": "see",
                                           "attachments": ["video/mp4:http://v.example/c.mp4"]}})
    assert response.status_code == 202, response.json

    _, [first] = _stored(app, "conv-media")
    assert first.attachments == ["image/jpeg:https://media.example.org/a.jpg",
                                 "https://media.example.org/b.ogg"]
    _, [second] = _stored(app, conversation_id)
    assert second.attachments == ["video/mp4:http://v.example/c.mp4"]


def test_a_shared_location_becomes_text_not_a_link(app, client, auth):
    body = default_body(conversation_id="conv-geo", site="lb",
                        input={"text": "here I am", "attachments": ["geo:-1.2921,36.8219"]})
    start(client, auth, body)
    _, [message] = _stored(app, "conv-geo")
    assert message.attachments is None
    assert message.text.endswith("\nShared location: -1.2921,36.8219")


def test_more_than_ten_attachments_is_400(app, client, auth):
    links = [f"https://media.example.org/{i}.jpg" for i in range(11)]
    refused(app, client, auth, {"site": "lb", "attachments": links}, "attachments")


def test_the_errors_name_nested_fields_as_dotted_paths(client, auth):
    response = client.post("/v1/conversations", headers=auth, data=json.dumps(
        {"site": "lb", "contact": {"urn": "u" * 256}}), content_type="application/json")
    out = error_of(response, 400, "invalid_request")
    assert list(out["errors"]) == ["contact.urn"]
