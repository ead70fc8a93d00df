"""A case from a RapidPro webhook to the helpline and the confirmation back, over real
HTTP: gunicorn, a delivery worker, the sandbox OpenCHS helpline and sandbox RapidPro."""

from __future__ import annotations

import uuid

import pytest

from adapter.sandbox.stack import CASE_CATEGORIES, FLOWS
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

NARRATIVE = "my stepfather locks me in the zebra-shed every night"
CONTACT_URN = "tel:+254711222333"


def webhook_body(run: str, **results: str) -> dict:
    """What a RapidPro Call Webhook node posts by default, after an intake flow."""
    return {
        "contact": {"uuid": str(uuid.uuid4()), "name": "Wanjiru Kamau", "urn": CONTACT_URN},
        "flow": {"uuid": "c0ffee00-0000-4000-8000-000000000001", "name": "Report abuse"},
        "run": {"uuid": run},
        "results": {key: {"value": value, "category": "All Responses"}
                    for key, value in results.items()},
    }


def intake_results() -> dict:
    return {"location": "Nairobi", "sex": "Female", "age": "13", "category": "Abuse",
            "narrative": NARRATIVE, "is_reporter": "yes"}


def post_case(stack, body: dict):
    return stack.session().post(f"{stack.url}/v1/cases", json=body, timeout=10)


def case_status(stack, case_id: str, wanted: str) -> dict | None:
    answer = stack.session().get(f"{stack.url}/v1/cases/{case_id}", timeout=10).json()
    return answer if answer["status"] == wanted else None


def flow_starts(stack, event: str, case_id: str) -> list[dict]:
    """The flow starts of ``event`` for this case (an earlier test's may come in late)."""
    return [r["body"] for r in stack.rapidpro.client.records("flow_starts")
            if r["body"]["flow"] == FLOWS[event] and r["body"]["params"]["case_id"] == case_id]


def test_a_case_from_rapidpro_results_reaches_the_helpline_with_the_site_ids(stack):
    run = str(uuid.uuid4())
    response = post_case(stack, webhook_body(run, **intake_results()))
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "pending"
    case_id = response.json()["case_id"]

    created = wait_until(lambda: case_status(stack, case_id, "created"), what="case created")

    records = stack.helpline.client.records()
    [reporter], [case], [client] = records["reporters"], records["cases"], records["clients"]
    assert created["case_reference"] == case["id"]
    assert case["body"]["case_category_id"] == CASE_CATEGORIES["category"]["abuse"]
    assert case["body"]["priority"] == CASE_CATEGORIES["priority"]
    assert case["body"]["narrative"] == NARRATIVE
    assert case["body"]["reporter_id"] == reporter["id"]
    assert case["body"]["src_uid"] == case_id
    assert client["body"]["case_id"] == case["id"]
    assert client["body"]["contact_sex_id"] == CASE_CATEGORIES["sex"]["female"]
    assert client["body"]["contact_location_id"] == CASE_CATEGORIES["location"]["nairobi"]
    assert client["body"]["contact_age"] == 13 and client["body"]["is_reporter"] == 1
    # Pseudonymous by default: no name, no phone number.
    for row in (reporter, client):
        assert row["body"]["contact_phone"] == ""
        assert row["body"]["contact_fname"].startswith("client-")
        assert "Wanjiru" not in str(row["body"])


def test_the_chatbot_hears_case_created_with_both_ids(stack):
    run = str(uuid.uuid4())
    body = webhook_body(run, **intake_results())
    case_id = post_case(stack, body).json()["case_id"]

    [start] = wait_until(lambda: flow_starts(stack, "case_created", case_id),
                         what="case_created start")

    reference = case_status(stack, case_id, "created")["case_reference"]
    assert start["contacts"] == [body["contact"]["uuid"]]
    params = start["params"]
    assert params["event"] == "case_created"
    assert (params["case_id"], params["case_reference"]) == (case_id, reference)
    assert params["chatbot_case_id"] == run and params["status"] == "created"


def test_a_helpline_failure_after_the_reporter_resumes_without_a_second_reporter(stack):
    stack.helpline.client.set_faults(fail_resource="cases", fail_resource_next=2,
                                     fail_resource_status=503)
    case_id = post_case(stack, webhook_body(str(uuid.uuid4()), **intake_results())).json()[
        "case_id"]

    created = wait_until(lambda: case_status(stack, case_id, "created"), what="case created")

    records = stack.helpline.client.records()
    case_posts = [r for r in records["requests"] if r["path"].endswith("/cases/")]
    assert len(case_posts) == 3  # two refused, the third created it
    assert len(records["reporters"]) == 1
    assert len(records["cases"]) == 1 and len(records["clients"]) == 1
    assert records["cases"][0]["body"]["reporter_id"] == records["reporters"][0]["id"]
    assert created["case_reference"] == records["cases"][0]["id"]


def test_a_case_the_helpline_never_takes_fails_and_the_chatbot_hears_it(stack):
    stack.helpline.client.set_faults(fail_resource="clients", fail_resource_next=100,
                                     fail_resource_status=500)
    case_id = post_case(stack, webhook_body(str(uuid.uuid4()), **intake_results())).json()[
        "case_id"]

    failed = wait_until(lambda: case_status(stack, case_id, "failed"), timeout=30,
                        what="case failed")

    assert "HTTP 500" in failed["failure_reason"]
    assert len(stack.helpline.client.records("reporters")) == 1
    [start] = wait_until(lambda: flow_starts(stack, "case_failed", case_id),
                         what="case_failed start")
    assert start["params"]["case_id"] == case_id


def test_invalid_intake_over_http_names_the_field(stack):
    results = {**intake_results(), "age": "thirteen"}
    response = post_case(stack, webhook_body(str(uuid.uuid4()), **results))
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["results.age"]
    assert "thirteen" not in response.text


def test_a_conversation_start_carrying_intake_opens_its_case(stack):
    body = {**webhook_body(str(uuid.uuid4()), **intake_results()), "text": "please help"}
    started = stack.session().post(f"{stack.url}/v1/conversations", json=body, timeout=10)
    assert started.status_code == 201, started.text
    case_id = started.json()["case_id"]

    created = wait_until(lambda: case_status(stack, case_id, "created"), what="case created")

    assert created["conversation_id"] == started.json()["conversation_id"]
    # The chat goes on in its own lane, whatever the case does.
    wait_until(lambda: stack.helpline.client.records("messages"), what="chat message")


def test_no_intake_value_appears_in_any_log_line(stack):
    run = str(uuid.uuid4())
    case_id = post_case(stack, webhook_body(run, **intake_results())).json()["case_id"]
    wait_until(lambda: flow_starts(stack, "case_created", case_id), what="case_created start")
    post_case(stack, webhook_body(str(uuid.uuid4()), **{**intake_results(), "age": "old"}))

    output = "\n".join(process.output() for process in stack.processes)
    assert case_id in output  # the logs do talk about the case, by id
    for secret in (NARRATIVE, "zebra-shed", "Wanjiru", "Kamau", CONTACT_URN, "711222333",
                   '"old"', "Abuse"):
        assert secret not in output, secret


def test_the_older_answer_shape_of_the_helpline_is_accepted(stack):
    stack.helpline.client.set_faults(legacy_shape=True)
    case_id = post_case(stack, webhook_body(str(uuid.uuid4()), **intake_results())).json()[
        "case_id"]

    created = wait_until(lambda: case_status(stack, case_id, "created"), what="case created")

    records = stack.helpline.client.records()
    assert created["case_reference"] == records["cases"][0]["id"]
    assert records["cases"][0]["body"]["reporter_id"] == records["reporters"][0]["id"]
