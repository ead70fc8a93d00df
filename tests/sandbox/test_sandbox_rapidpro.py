"""The RapidPro API v2 sandbox, run as a real subprocess and used over HTTP."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import requests

from adapter.sandbox.control import RunningSandbox
from tests.sandbox.conftest import FLOW

CONTACT = "c0ffee00-0000-4000-8000-000000000002"


def call(
    sandbox: RunningSandbox, endpoint: str, body: dict[str, Any], token: str = "tok-weni"
) -> requests.Response:
    headers = {"Authorization": f"Token {token}"}
    url = f"{sandbox.url}/api/v2/{endpoint}"
    return requests.post(url, json=body, headers=headers, timeout=10)


def test_flow_start_is_created_and_recorded_with_org_and_headers(rapidpro: RunningSandbox) -> None:
    body = {"flow": FLOW, "contacts": [CONTACT], "params": {"event": "closed"}}
    response = call(rapidpro, "flow_starts.json", body)

    assert response.status_code == 201
    created = response.json()
    assert created["flow"]["uuid"] == FLOW and created["status"] == "pending"
    assert created["contacts"] == [{"uuid": CONTACT, "name": None}]
    assert created["params"] == {"event": "closed"}
    (recorded,) = rapidpro.client.records("flow_starts")
    assert recorded["org"] == "weni" and recorded["body"] == body
    assert recorded["headers"]["Authorization"] == "Token tok-weni"
    assert recorded["endpoint"] == "/api/v2/flow_starts.json"


def test_endpoints_answer_without_the_json_suffix_and_accept_legacy_extra(
    rapidpro: RunningSandbox,
) -> None:
    body = {"flow": FLOW, "urns": ["whatsapp:254700000001"], "extra": {"text": "hi"}}
    response = call(rapidpro, "flow_starts", body)
    assert response.status_code == 201
    assert response.json()["extra"] == {"text": "hi"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"contacts": [CONTACT]}, "flow"),
        ({"flow": "not-a-uuid", "contacts": [CONTACT]}, "flow"),
        # A well-formed uuid that is no flow of this workspace: RapidPro refuses it too.
        ({"flow": str(uuid.UUID(int=7)), "contacts": [CONTACT]}, "flow"),
        ({"flow": FLOW, "contacts": ["bob"]}, "contacts"),
        ({"flow": FLOW, "urns": ["0700000001"]}, "urns"),
        ({"flow": FLOW, "urns": [f"tel:+2547{i:08d}" for i in range(101)]}, "urns"),
        ({"flow": FLOW, "contacts": [CONTACT], "params": ["x"]}, "params"),
        (
            {"flow": FLOW, "contacts": [CONTACT], "restart_participants": "yes"},
            "restart_participants",
        ),
        ({"flow": FLOW}, "non_field_errors"),
    ],
)
def test_invalid_flow_start_is_a_400_naming_the_field(
    rapidpro: RunningSandbox, body: dict, field: str
) -> None:
    response = call(rapidpro, "flow_starts.json", body)
    assert response.status_code == 400
    assert list(response.json()) == [field]
    assert rapidpro.client.records("flow_starts") == []


def test_broadcast_accepts_text_or_translations(rapidpro: RunningSandbox) -> None:
    plain = call(rapidpro, "broadcasts.json", {"text": "Hello", "contacts": [CONTACT]})
    translated = call(rapidpro, "broadcasts.json", {"text": {"swa": "Habari"}, "urns": ["tel:+1"]})
    assert (plain.status_code, translated.status_code) == (201, 201)
    assert plain.json()["text"] == {"eng": "Hello"}
    assert translated.json()["base_language"] == "swa"
    assert len(rapidpro.client.records("broadcasts", org="weni")) == 2


def test_broadcast_without_text_or_recipients_is_a_400(rapidpro: RunningSandbox) -> None:
    assert call(rapidpro, "broadcasts.json", {"contacts": [CONTACT]}).status_code == 400
    assert call(rapidpro, "broadcasts.json", {"text": "Hi"}).status_code == 400


MEDIA = "0f1e2d3c-4b5a-4697-8877-665544332211"


def test_broadcast_attachments_must_be_media_uploaded_to_the_workspace(
        rapidpro: RunningSandbox) -> None:
    """As RapidPro's MediaField: a helpline's URL is no media of the workspace."""
    rapidpro.client.configure(media=[MEDIA])
    foreign = call(rapidpro, "broadcasts.json", {
        "text": "see", "contacts": [CONTACT],
        "attachments": ["image/jpeg:https://helpline.example/a.jpg"]})
    assert foreign.status_code == 400
    assert foreign.json() == {
        "attachments": ["No such object: image/jpeg:https://helpline.example/a.jpg"]}
    uploaded = call(rapidpro, "broadcasts.json", {
        "contacts": [CONTACT],
        "attachments": [f"image/jpeg:https://rp.example/media/{MEDIA}/a.jpg", MEDIA]})
    assert uploaded.status_code == 201, uploaded.text
    assert uploaded.json()["attachments"] == [
        f"image/jpeg:https://rp.example/media/{MEDIA}/a.jpg", MEDIA]
    too_many = call(rapidpro, "broadcasts.json", {"contacts": [CONTACT],
                                                 "attachments": [MEDIA] * 11})
    assert too_many.status_code == 400
    [recorded] = rapidpro.client.records("broadcasts")
    assert recorded["body"]["attachments"] == uploaded.json()["attachments"]


def test_token_auth_is_required(rapidpro: RunningSandbox) -> None:
    wrong = call(rapidpro, "broadcasts.json", {"text": "Hi", "contacts": [CONTACT]}, "nope")
    assert wrong.status_code == 401
    assert wrong.json() == {"detail": "Invalid token."}
    missing = requests.post(f"{rapidpro.url}/api/v2/broadcasts.json", json={}, timeout=5)
    assert missing.status_code == 401


def test_throttle_next_answers_429_with_retry_after(rapidpro: RunningSandbox) -> None:
    rapidpro.client.set_faults(throttle_next=1, retry_after=7)
    body = {"flow": FLOW, "contacts": [CONTACT]}
    throttled = call(rapidpro, "flow_starts.json", body)
    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "7"
    assert throttled.json() == {"detail": "Request was throttled. Expected available in 7 seconds."}
    assert call(rapidpro, "flow_starts.json", body).status_code == 201


def test_rate_limit_is_per_org(rapidpro: RunningSandbox) -> None:
    rapidpro.client.configure(rate_per_hour=3600, burst=2)
    body = {"flow": FLOW, "contacts": [CONTACT]}
    statuses = [call(rapidpro, "flow_starts.json", body).status_code for _ in range(3)]
    assert statuses == [201, 201, 429]
    assert call(rapidpro, "flow_starts.json", body, token="tok-other").status_code == 201
    third = rapidpro.client.records("requests")[2]
    assert third["status"] == 429


def test_fail_next_and_down_faults(rapidpro: RunningSandbox) -> None:
    body = {"text": "Hi", "contacts": [CONTACT]}
    rapidpro.client.set_faults(fail_next=1, fail_status=502)
    assert call(rapidpro, "broadcasts.json", body).status_code == 502
    assert call(rapidpro, "broadcasts.json", body).status_code == 201
    rapidpro.client.set_faults(down=True)
    assert call(rapidpro, "broadcasts.json", body).status_code == 503
    assert rapidpro.client.health()


def test_get_lists_only_this_orgs_flow_starts(rapidpro: RunningSandbox) -> None:
    call(rapidpro, "flow_starts.json", {"flow": FLOW, "contacts": [CONTACT]})
    call(rapidpro, "flow_starts.json", {"flow": FLOW, "contacts": [str(uuid.uuid4())]}, "tok-other")
    listed = requests.get(
        f"{rapidpro.url}/api/v2/flow_starts.json",
        headers={"Authorization": "Token tok-weni"},
        timeout=5,
    ).json()
    assert [start["contacts"][0]["uuid"] for start in listed["results"]] == [CONTACT]


def test_wait_for_times_out_with_what_it_saw(rapidpro: RunningSandbox) -> None:
    with pytest.raises(TimeoutError, match="condition not met"):
        rapidpro.client.wait_for(lambda starts: len(starts) == 1, timeout=0.2, kind="flow_starts")


def test_a_body_that_is_not_json_is_a_415(rapidpro: RunningSandbox) -> None:
    response = requests.post(
        f"{rapidpro.url}/api/v2/broadcasts.json",
        data="text=hi",
        headers={"Authorization": "Token tok-weni", "Content-Type": "text/plain"},
        timeout=5,
    )
    assert response.status_code == 415
    assert response.json() == {"detail": 'Unsupported media type "text/plain" in request.'}


def test_flows_lists_the_workspace_flows_and_filters_by_uuid(rapidpro: RunningSandbox) -> None:
    headers = {"Authorization": "Token tok-weni"}
    listed = requests.get(f"{rapidpro.url}/api/v2/flows.json", headers=headers, timeout=10)
    assert listed.status_code == 200
    assert [flow["uuid"] for flow in listed.json()["results"]] == [FLOW]
    one = requests.get(f"{rapidpro.url}/api/v2/flows.json", params={"uuid": FLOW},
                       headers=headers, timeout=10).json()["results"]
    assert [flow["name"] for flow in one] == ["Helpline events"]
    other = requests.get(f"{rapidpro.url}/api/v2/flows.json",
                         params={"uuid": str(uuid.UUID(int=7))}, headers=headers,
                         timeout=10).json()
    assert other["results"] == []
    refused = requests.get(f"{rapidpro.url}/api/v2/flows.json", timeout=10)
    assert refused.status_code == 401
