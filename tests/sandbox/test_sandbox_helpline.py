"""The OpenCHS helpline sandbox, run as a real subprocess and used over HTTP."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
import requests

from adapter.sandbox.control import RunningSandbox, start_sandbox

from .conftest import AdapterStub

AUTH = ("sandbox", "sandbox-password")


def get_token(sandbox: RunningSandbox, auth: tuple[str, str] = AUTH) -> str:
    response = requests.post(sandbox.api_url, auth=auth, timeout=5)
    assert response.status_code == 200, response.text
    return response.json()["ss"][0][0]


def message(session_id: str = "s-1", message_id: str | None = None, **extra: Any) -> dict:
    return {
        "channel": "chat",
        "timestamp": str(int(time.time())),
        "session_id": session_id,
        "message_id": message_id or uuid.uuid4().hex,
        "from": "client-7f3a",
        "message": "I need help",
        "mime": "text/plain",
        **extra,
    }


def post(sandbox: RunningSandbox, path: str, token: str, body: dict) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"}
    return requests.post(sandbox.api_url + path, json=body, headers=headers, timeout=10)


# -- the helpline's own API -----------------------------------------------------------------


def test_token_call_needs_the_basic_auth_credentials(helpline: RunningSandbox) -> None:
    wrong = requests.post(helpline.api_url, auth=("sandbox", "nope"), timeout=5)
    assert wrong.status_code == 401
    assert wrong.json()["errors"]
    assert get_token(helpline)
    assert len(helpline.client.records("tokens")) == 1


def test_message_is_accepted_and_recorded_in_session_order(helpline: RunningSandbox) -> None:
    token = get_token(helpline)
    for text in ("first", "second"):
        response = post(helpline, "msg/", token, message("s-order", message=text))
        assert response.status_code == 201
        assert "msg" in response.json()
    post(helpline, "msg/", token, message("s-other"))

    recorded = helpline.client.records("messages", session_id="s-order")
    assert [(m["message"], m["session_seq"]) for m in recorded] == [("first", 1), ("second", 2)]
    assert recorded[0]["from"] == "client-7f3a" and recorded[0]["channel"] == "chat"


def test_repeated_message_id_is_stored_again_as_real_openchs_does(
    helpline: RunningSandbox,
) -> None:
    """OpenCHS's msg/ stores every POST (message_id is only its src_uid): a redelivery
    reaches the counsellor twice, and the sandbox must show it, not hide it."""
    token = get_token(helpline)
    body = message("s-dup", message_id="1680783378/00001")
    first = post(helpline, "msg/", token, body)
    again = post(helpline, "msg", token, body)  # without the trailing slash, too

    assert (first.status_code, again.status_code) == (201, 201)
    assert first.json() != again.json()  # two rows
    recorded = helpline.client.records("messages", session_id="s-dup")
    assert [(m["message_id"], m["session_seq"]) for m in recorded] == [
        ("1680783378/00001", 1), ("1680783378/00001", 2)]
    assert helpline.client.counts()["duplicates"] == 0


def test_repeated_message_id_is_recorded_once_when_asked_to_dedupe(
    helpline: RunningSandbox,
) -> None:
    helpline.client.configure(dedupe_message_ids=True)
    token = get_token(helpline)
    body = message("s-dup", message_id="1680783378/00001")
    first = post(helpline, "msg/", token, body)
    again = post(helpline, "msg", token, body)

    assert (first.status_code, again.status_code) == (201, 201)
    assert first.json() == again.json()
    assert len(helpline.client.records("messages")) == 1
    assert helpline.client.counts()["duplicates"] == 1


def test_message_without_a_valid_token_is_refused(helpline: RunningSandbox) -> None:
    assert post(helpline, "msg/", "made-up", message()).status_code == 401
    token = get_token(helpline)
    helpline.client.set_faults(expire_tokens=True)
    assert post(helpline, "msg/", token, message()).status_code == 401
    helpline.client.configure(token_ttl=0)
    assert post(helpline, "msg/", get_token(helpline), message()).status_code == 401
    assert helpline.client.records("messages") == []


def test_message_missing_fields_is_a_400_naming_them(helpline: RunningSandbox) -> None:
    response = post(helpline, "msg/", get_token(helpline), {"message": "hi"})
    assert response.status_code == 400
    assert "session_id is required" in response.json()["errors"]


@pytest.mark.parametrize("mime", ["image", "https://files.example/a.jpg", "image/", 7])
def test_a_mime_that_is_no_mime_type_is_a_400_and_nothing_is_stored(
        helpline: RunningSandbox, mime) -> None:
    response = post(helpline, "msg/", get_token(helpline), message(mime=mime))
    assert response.status_code == 400
    assert "mime: not a MIME type (type/subtype)" in response.json()["errors"]
    assert helpline.client.records("messages") == []


def test_each_message_keeps_its_mime(helpline: RunningSandbox) -> None:
    token = get_token(helpline)
    for mime in ("text/plain", "image/jpeg", "application/vnd.oasis.opendocument.text"):
        assert post(helpline, "msg/", token, message(mime=mime)).status_code == 201
    assert [m["mime"] for m in helpline.client.records("messages")] == [
        "text/plain", "image/jpeg", "application/vnd.oasis.opendocument.text"]


def test_fail_message_id_fails_only_the_posts_of_that_id(helpline: RunningSandbox) -> None:
    helpline.client.set_faults(fail_message_id="/2", fail_message_id_next=1,
                               fail_message_id_status=502)
    token = get_token(helpline)
    assert post(helpline, "msg/", token, message(message_id="m/1")).status_code == 201
    assert post(helpline, "msg/", token, message(message_id="m/2")).status_code == 502
    assert post(helpline, "msg/", token, message(message_id="m/2")).status_code == 201
    assert [m["message_id"] for m in helpline.client.records("messages")] == ["m/1", "m/2"]


def test_case_resources_answer_rows_keyed_by_new_id(helpline: RunningSandbox) -> None:
    token = get_token(helpline)
    reporter = post(helpline, "reporters", token, {"contact_fname": "Anon", "src": "weni"})
    assert reporter.status_code == 201
    ((reporter_id, row),) = reporter.json()["reporters"].items()
    assert row[0] == reporter_id and "Anon" in row

    case = post(helpline, "cases/", token, {"reporter_id": reporter_id, "priority": 3})
    assert list(case.json()) == ["cases"]
    assert helpline.client.records("cases")[0]["body"]["reporter_id"] == reporter_id


def test_legacy_shape_answers_a_list_of_rows(helpline: RunningSandbox) -> None:
    helpline.client.set_faults(legacy_shape=True)
    response = post(helpline, "clients", get_token(helpline), {"case_id": "5", "contact_age": 12})
    rows = response.json()["clients"]
    assert isinstance(rows, list) and rows[0][0].isdigit()


def test_fail_resource_fails_only_that_resource_n_times(helpline: RunningSandbox) -> None:
    token = get_token(helpline)
    helpline.client.set_faults(fail_resource="clients", fail_resource_next=1)
    assert post(helpline, "reporters", token, {}).status_code == 201
    assert post(helpline, "clients", token, {}).status_code == 500
    assert post(helpline, "clients", token, {}).status_code == 201
    assert len(helpline.client.records("clients")) == 1


# -- fault switches -------------------------------------------------------------------------


def test_fail_next_answers_the_status_with_retry_after_then_recovers(
    helpline: RunningSandbox,
) -> None:
    token = get_token(helpline)
    helpline.client.set_faults(fail_next=2, fail_status=503, retry_after=1)
    failed = [post(helpline, "msg/", token, message()) for _ in range(2)]
    assert [r.status_code for r in failed] == [503, 503]
    assert failed[0].headers["Retry-After"] == "1"
    assert post(helpline, "msg/", token, message()).status_code == 201
    assert len(helpline.client.records("messages")) == 1


def test_unauthorized_next_and_permanent_failure(helpline: RunningSandbox) -> None:
    token = get_token(helpline)
    helpline.client.set_faults(unauthorized_next=1)
    assert post(helpline, "msg/", token, message()).status_code == 401
    assert post(helpline, "msg/", token, message()).status_code == 201
    helpline.client.set_faults(fail_status_permanent=400)
    assert [post(helpline, "msg/", token, message()).status_code for _ in range(2)] == [400, 400]
    helpline.client.set_faults(fail_status_permanent=None)
    assert post(helpline, "msg/", token, message()).status_code == 201


def test_down_refuses_everything_but_the_control_api(helpline: RunningSandbox) -> None:
    helpline.client.set_faults(down=True)
    response = requests.post(helpline.api_url, auth=AUTH, timeout=5)
    assert response.status_code == 503
    assert "close" in response.headers["Connection"]
    assert helpline.client.health()
    assert helpline.client.records("requests")[0]["status"] == 503


def test_slow_delays_the_answer(helpline: RunningSandbox) -> None:
    helpline.client.set_faults(slow=0.3)
    started = time.monotonic()
    get_token(helpline)
    assert time.monotonic() - started >= 0.3


def test_unknown_fault_switch_is_rejected(helpline: RunningSandbox) -> None:
    with pytest.raises(requests.HTTPError, match="unknown fault switch"):
        helpline.client.set_faults(fial_next=1)


def test_requests_are_recorded_with_headers_and_body(helpline: RunningSandbox) -> None:
    token = get_token(helpline)
    post(helpline, "msg/", token, message("s-rec"))
    last = helpline.client.records("requests")[-1]
    assert last["method"] == "POST" and last["path"].endswith("/msg/")
    assert last["headers"]["Authorization"] == f"Bearer {token}"
    assert last["json"]["session_id"] == "s-rec" and last["status"] == 201


# -- counsellors and callbacks --------------------------------------------------------------


def test_hunting_assigns_replies_and_closes_through_token_auth_callbacks(
    helpline: RunningSandbox, helpline_with_counsellors: tuple[Any, AdapterStub]
) -> None:
    client, stub = helpline_with_counsellors
    client.configure(close_after=2)
    token = get_token(helpline)
    post(helpline, "msg/", token, message("chat-9", message="first"))
    stub.wait_for(lambda calls: any(c["path"] == "message/" for c in calls))
    post(helpline, "msg/", token, message("chat-9", message="second"))

    calls = stub.wait_for(lambda calls: any(c["path"].endswith("/close/") for c in calls))
    assert [c["path"] for c in calls] == ["assign/", "message/", "message/", "chat/chat-9/close/"]
    assert calls[0]["json"] == {"session_id": "chat-9", "counsellor": "Amani"}
    first_reply = calls[1]["json"]
    assert first_reply["recipient"] == "client-7f3a" and first_reply["message_type"] == "text"
    assert first_reply["session_id"] == "chat-9" and first_reply["counsellor"] == "Amani"
    assert first_reply["message_id"] != calls[2]["json"]["message_id"]
    assert first_reply["content"] != calls[2]["json"]["content"]
    assert calls[3]["json"] == {"chat_source": "HELPLINE"}
    assert stub.token_requests == 1  # one token, reused for every callback
    assert client.sessions()[0]["state"] == "closed"


def test_acks_each_client_message_when_asked(
    helpline: RunningSandbox, helpline_with_counsellors: tuple[Any, AdapterStub]
) -> None:
    client, stub = helpline_with_counsellors
    client.configure(hunting=False, send_acks=True)
    post(helpline, "msg/", get_token(helpline), message("chat-ack", message_id="m-1"))

    (ack,) = stub.wait_for(bool)
    assert ack == {
        **ack,
        "path": "ack/",
        "json": {"session_id": "chat-ack", "message_id": "m-1", "status": "delivered"},
    }


def test_an_untaken_offer_times_out_and_hunting_moves_on(
    helpline: RunningSandbox, helpline_with_counsellors: tuple[Any, AdapterStub]
) -> None:
    client, stub = helpline_with_counsellors
    client.configure(auto_answer=[False, True])
    post(helpline, "msg/", get_token(helpline), message("chat-hunt"))

    offers = client.wait_for(lambda o: any(x["outcome"] == "accepted" for x in o), kind="offers")
    assert [(o["counsellor"], o["outcome"]) for o in offers] == [
        ("Amani", "timed_out"),
        ("Baraka", "accepted"),
    ]
    stub.wait_for(lambda calls: any(c["path"] == "assign/" for c in calls))
    assert stub.received("assign/")[0]["json"]["counsellor"] == "Baraka"


def test_callback_token_is_fetched_again_after_a_401(
    helpline: RunningSandbox, helpline_with_counsellors: tuple[Any, AdapterStub]
) -> None:
    client, stub = helpline_with_counsellors
    client.configure(hunting=False)
    assert client.counsellor("assign", session_id="s-tok")["ok"]
    stub.revoke_token()
    outcome = client.counsellor("reply", session_id="s-tok", text="hi", recipient="client-1")
    assert outcome["ok"] and outcome["status"] == 200
    assert stub.token_requests == 2


def test_failed_callbacks_are_retried_with_backoff_and_recorded(
    helpline: RunningSandbox, helpline_with_counsellors: tuple[Any, AdapterStub]
) -> None:
    client, stub = helpline_with_counsellors
    client.configure(hunting=False, send_acks=True)
    stub.next_statuses = [503, 500]
    post(helpline, "msg/", get_token(helpline), message("s-retry", message_id="m-r"))

    (ack,) = client.wait_for(bool, kind="callbacks", callback="ack")
    assert (ack["ok"], ack["attempts"], ack["status"]) == (True, 3, 200)


def test_counsellor_controls_act_synchronously(
    helpline: RunningSandbox, helpline_with_counsellors: tuple[Any, AdapterStub]
) -> None:
    client, stub = helpline_with_counsellors
    client.configure(hunting=False)
    post(helpline, "msg/", get_token(helpline), message("s-ctl"))

    reply = client.counsellor("reply", session_id="s-ctl", text="Hello", counsellor="Zawadi")
    assert reply["status"] == 200
    assert stub.received("message/")[0]["json"]["counsellor"] == "Zawadi"
    minimal = client.counsellor("reply", session_id="s-ctl", text="Hi", minimal=True)
    assert minimal["body"] == {"recipient": "client-7f3a", "message_type": "text", "content": "Hi"}
    assert client.counsellor("close", session_id="s-ctl")["ok"]
    assert stub.received("chat/")[0]["path"] == "chat/s-ctl/close/"

    unknown = requests.post(
        f"{helpline.url}/_sandbox/counsellor/reply",
        json={"session_id": "nope", "text": "x"},
        timeout=5,
    )
    assert unknown.status_code == 404


def test_callbacks_without_a_callback_url_are_recorded_as_failed(helpline: RunningSandbox) -> None:
    outcome = helpline.client.counsellor("close", session_id="s-none")
    assert outcome["ok"] is False and "callback_url" in outcome["error"]


# -- command line ---------------------------------------------------------------------------


def test_cli_takes_credentials_from_env_and_base_path_from_flags() -> None:
    env = {"SANDBOX_HELPLINE_USERNAME": "ke", "SANDBOX_HELPLINE_PASSWORD": "s3cret"}
    sandbox = start_sandbox("helpline", "--base-path", "/helpline/", env=env)
    try:
        assert sandbox.api_url.endswith("/helpline/")
        assert get_token(sandbox, auth=("ke", "s3cret"))
        assert sandbox.client.config()["password"] == "***"
        assert "helpline sandbox listening" in sandbox.process.output()
    finally:
        sandbox.stop()


def test_the_hunting_daemon_says_each_chats_place_in_the_queue(helpline: RunningSandbox) -> None:
    """``GET <base>hunting/?session_id=``: 1-based among the chats not yet taken, in the
    order hunting began; null once taken; 404 for a chat it never saw; Bearer only."""
    helpline.client.configure(hunting=True, auto_answer=0.0, offer_timeout=120)
    token = get_token(helpline)
    for session in ("q-1", "q-2", "q-3"):
        assert post(helpline, "msg/", token, message(session)).status_code == 201

    def ask(session: str, bearer: str | None = token) -> requests.Response:
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        return requests.get(helpline.api_url + "hunting/", params={"session_id": session},
                            headers=headers, timeout=5)

    assert [ask(s).json()["position"] for s in ("q-1", "q-2", "q-3")] == [1, 2, 3]
    helpline.client.counsellor("assign", session_id="q-2")
    assert ask("q-2").json() == {"session_id": "q-2", "state": "active", "position": None}
    assert [ask(s).json()["position"] for s in ("q-1", "q-3")] == [1, 2]
    assert ask("q-never").status_code == 404
    assert ask("q-1", bearer=None).status_code == 401
    assert ask("q-1", bearer="not-a-token").status_code == 401
    no_session = requests.get(helpline.api_url + "hunting/", timeout=5,
                              headers={"Authorization": f"Bearer {token}"})
    assert no_session.status_code == 400 and no_session.json()["errors"]
