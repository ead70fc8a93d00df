"""``POST /v1/cases``, intake on ``POST /v1/conversations``, ``GET /v1/cases/<id>``:
answered at once with our case id and ``pending``, idempotent, field-named errors."""

from __future__ import annotations

import pytest

from adapter.extensions import db
from adapter.models import Case, Conversation, Delivery
from tests.conftest import make_client
from tests.support.sites import write_site

CONTACT = {"uuid": "2f9c1a7e-1b2c-4d3e-8f90-a1b2c3d4e5f6", "name": "Child",
           "urn": "tel:+254700000009"}
RUN = "9a8b7c6d-0000-4000-8000-00000000c45e"


def rapidpro_body(**results: str) -> dict:
    """RapidPro's default Call Webhook body, with intake collected by the flow."""
    return {
        "contact": CONTACT,
        "flow": {"uuid": "f1f1f1f1-0000-4000-8000-000000000001", "name": "Report"},
        "run": {"uuid": RUN},
        "results": {key: {"value": value, "category": "All Responses"}
                    for key, value in results.items()},
    }


INTAKE = {"location": "Nairobi", "sex": "Female", "age": "13", "category": "Abuse",
          "narrative": "my uncle hurts me", "consent": "Yes"}


@pytest.fixture
def consent_countries(countries_dir):
    """The loopback folder plus ``cs``, a site that needs consent and reads ``child_age``."""
    write_site(countries_dir, "cs", name="Consent site", plugin="loopback",
               routing={"locations": ["Kigali"]},
               helpline={"url": "http://127.0.0.1:9/cs"},
               intake={"required_consent": ["share"], "keys": {"age": ["child_age"]}})
    return countries_dir


def test_a_case_from_rapidpro_results_is_pending_with_our_id(client, auth, app):
    response = client.post("/v1/cases", headers=auth, json=rapidpro_body(**INTAKE))

    assert response.status_code == 202, response.json
    answer = response.json
    assert answer["status"] == "pending" and answer["site"] == "lb"
    assert answer["chatbot_case_id"] == RUN and answer["case_reference"] is None
    with app.app_context():
        case = db.session.get(Case, answer["case_id"])
        assert case.intake == {"location": "Nairobi", "sex": "Female", "age": 13,
                               "category": "Abuse", "narrative": "my uncle hurts me",
                               "consent": {"share": True}}
        assert case.contact_uuid == CONTACT["uuid"] and case.contact_urn is None
        [delivery] = db.session.execute(db.select(Delivery)).scalars().all()
        assert (delivery.target, delivery.action, delivery.case_id) == \
            ("helpline", "case", case.id)
    detail = client.get(f"/v1/cases/{answer['case_id']}", headers=auth)
    assert detail.status_code == 200 and detail.json["status"] == "pending"
    assert "intake" not in detail.json


def test_rapidpro_categories_are_used_when_the_flow_sorted_the_answer(client, auth, app):
    body = rapidpro_body(location="Nairobi", narrative="help")
    body["results"]["sex"] = {"value": "f", "category": "Female"}
    response = client.post("/v1/cases", headers=auth, json=body)
    with app.app_context():
        assert db.session.get(Case, response.json["case_id"]).intake["sex"] == "Female"


def test_a_repeat_with_the_same_chatbot_id_is_the_same_case(client, auth, app):
    first = client.post("/v1/cases", headers=auth, json=rapidpro_body(**INTAKE))
    again = client.post("/v1/cases", headers=auth, json=rapidpro_body(**INTAKE))
    explicit = client.post("/v1/cases", headers=auth,
                           json={"case_id": RUN, "site": "lb", "intake": {"age": 9}})

    assert again.status_code == 200 and explicit.status_code == 200
    assert first.json["case_id"] == again.json["case_id"] == explicit.json["case_id"]
    with app.app_context():
        assert db.session.query(Case).count() == 1
        assert db.session.query(Delivery).count() == 1
    by_chatbot_id = client.get(f"/v1/cases/{RUN}", headers=auth)
    assert by_chatbot_id.json["case_id"] == first.json["case_id"]


def test_an_idempotency_key_replays_the_first_answer(client, auth, app):
    body = {"site": "lb", "contact": {"uuid": "c-1"}, "intake": {"narrative": "x"}}
    headers = {**auth, "Idempotency-Key": "case-key-1"}
    first = client.post("/v1/cases", headers=headers, json=body)
    second = client.post("/v1/cases", headers=headers, json=body)
    assert first.status_code == second.status_code == 202
    assert second.headers["Idempotent-Replayed"] == "true"
    assert first.json["chatbot_case_id"] == "case-key-1"
    with app.app_context():
        assert db.session.query(Case).count() == 1


@pytest.mark.parametrize(("body", "field"), [
    (rapidpro_body(location="Nairobi", age="thirteen"), "results.age"),
    (rapidpro_body(location="Nairobi", age="140"), "results.age"),
    (rapidpro_body(location="Nairobi", is_reporter="perhaps"), "results.is_reporter"),
    (rapidpro_body(location="Nairobi", consent="maybe"), "results.consent"),
    ({"site": "lb", "intake": {"age": -1}}, "intake.age"),
    ({"site": "lb", "intake": {"shoe_size": 3}}, "intake.shoe_size"),
    ({"site": "lb", "intake": {"narrative": ""}}, "intake.narrative"),
    ({"site": "lb"}, "intake"),
])
def test_invalid_intake_is_a_400_naming_the_field(client, auth, app, body, field):
    response = client.post("/v1/cases", headers=auth, json=body)

    assert response.status_code == 400, response.json
    assert response.json["code"] == "invalid_request"
    assert field in response.json["errors"], response.json
    with app.app_context():
        assert db.session.query(Case).count() == 0


def test_a_nested_explicit_field_is_named_inside_intake(client, auth):
    response = client.post("/v1/cases", headers=auth,
                           json={"site": "lb", "intake": {"age": "old"}})
    assert response.json["errors"] == {"intake.age": ["Not a valid integer."]}


def test_a_site_needing_consent_refuses_a_case_without_it(app_factory, consent_countries):
    app = app_factory(countries=consent_countries)
    client, auth = app.test_client(), {"Authorization": f"Token {make_client(app)}"}

    refused = client.post("/v1/cases", headers=auth,
                          json=rapidpro_body(location="Kigali", child_age="12", consent="No"))
    assert refused.status_code == 422
    assert refused.json["code"] == "consent_required"
    assert list(refused.json["errors"]) == ["results.consent"]

    accepted = client.post("/v1/cases", headers=auth,
                           json=rapidpro_body(location="Kigali", child_age="12", consent="Yes"))
    assert accepted.status_code == 202, accepted.json
    with app.app_context():
        assert db.session.get(Case, accepted.json["case_id"]).intake["age"] == 12


def test_a_case_nobody_can_route_is_unroutable(client, auth):
    response = client.post("/v1/cases", headers=auth,
                           json={"location": "Atlantis", "intake": {"narrative": "x"}})
    assert response.status_code == 422 and response.json["code"] == "unroutable"
    assert "site" in response.json["errors"]


def test_a_case_of_another_site_is_forbidden_and_an_unknown_one_is_404(app, client, auth):
    created = client.post("/v1/cases", headers=auth,
                          json={"site": "lb", "contact": {"uuid": "c-2"},
                                "intake": {"narrative": "x"}}).json
    uganda_key = make_client(app, name="ug-bot", sites=["ug"], namespace="weni")
    uganda = {"Authorization": f"Token {uganda_key}"}
    stranger = {"Authorization": f"Token {make_client(app, name='other-bot')}"}

    assert client.get(f"/v1/cases/{created['case_id']}", headers=uganda).status_code == 403
    # Another chatbot's case does not exist for it, by either id.
    assert client.get(f"/v1/cases/{created['case_id']}", headers=stranger).status_code == 404
    assert client.post("/v1/cases", headers=uganda,
                       json={"site": "lb", "intake": {"age": 3}}).status_code == 403
    missing = client.get("/v1/cases/no-such-case", headers=auth)
    assert missing.status_code == 404 and missing.json["code"] == "case_not_found"
    assert client.get(f"/v1/cases/{created['case_id']}").status_code == 401


def test_a_start_with_intake_opens_the_case_with_the_conversation(client, auth, app):
    body = {**rapidpro_body(**INTAKE), "text": "I need help"}
    body["results"]["conversation_id"] = {"value": "conv-with-case", "category": "All"}

    started = client.post("/v1/conversations", headers=auth, json=body)
    repeated = client.post("/v1/conversations", headers=auth, json=body)

    assert started.status_code == 201, started.json
    assert repeated.status_code == 200
    case_id = started.json["case_id"]
    assert repeated.json["case_id"] == case_id
    with app.app_context():
        case = db.session.get(Case, case_id)
        assert case.conversation_id == started.json["id"]
        assert case.client_pseudonym == started.json["client"]
        assert db.session.query(Case).count() == 1
        lanes = {d.action: d.lane for d in db.session.execute(db.select(Delivery)).scalars()}
        assert lanes["case"] != lanes["open"]  # a slow case never holds up the chat
    detail = client.get(f"/v1/cases/{case_id}", headers=auth).json
    assert detail["conversation_id"] == "conv-with-case"


def test_a_start_with_only_routing_results_opens_no_case(client, auth, app):
    body = rapidpro_body(location="Nairobi", message="hello")
    started = client.post("/v1/conversations", headers=auth, json=body)
    assert started.status_code == 201 and "case_id" not in started.json
    with app.app_context():
        assert db.session.query(Case).count() == 0


def test_a_start_with_invalid_intake_still_escalates_without_a_case(client, auth, app):
    body = {**rapidpro_body(location="Nairobi"), "intake": {"age": 500}}
    response = client.post("/v1/conversations", headers=auth, json=body)
    assert response.status_code == 201, response.json
    assert response.json["state"] == "requested" and "case_id" not in response.json
    assert "intake.age" in response.json["intake_errors"]["errors"]
    with app.app_context():
        assert db.session.query(Case).count() == 0
        assert db.session.query(Conversation).count() == 1


def test_a_case_can_belong_to_an_earlier_conversation(client, auth, app):
    started = client.post("/v1/conversations", headers=auth,
                          json={"conversation_id": "chat-1", "site": "lb",
                                "contact": {"uuid": "c-3"}}).json
    response = client.post("/v1/cases", headers=auth,
                           json={"conversation_id": "chat-1", "case_id": "after-chat-1",
                                 "intake": {"category": "neglect"}})
    assert response.status_code == 202, response.json
    assert response.json["conversation_id"] == "chat-1"
    assert response.json["client"] == started["client"]
    unknown = client.post("/v1/cases", headers=auth,
                          json={"conversation_id": "nope", "intake": {"age": 3}})
    assert unknown.status_code == 404 and "conversation_id" in unknown.json["errors"]


def test_the_openapi_document_has_the_case_routes(client):
    spec = client.get("/openapi.json").json
    assert {"post"} <= set(spec["paths"]["/v1/cases"])
    assert "get" in spec["paths"]["/v1/cases/{case_id}"]
    responses = spec["paths"]["/v1/cases"]["post"]["responses"]
    assert {"200", "202", "400", "401", "403", "404", "422", "503"} <= set(responses)
    assert "Intake" in spec["components"]["schemas"]
