"""The openchs plugin against the sandbox helpline over real HTTP: the wire format
byte for byte, one session token reused, refreshed once on a 401."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from adapter.models import Case, Conversation, Message
from adapter.sites import load_site_file
from plugins.manager import helpline_kinds, make_plugin_manager
from plugins.types import CaseProgress, DeliveryFailure, SendResult

from .conftest import HELPLINE_USER, openchs_site

MSG_FIELDS = {"channel", "timestamp", "session_id", "message_id", "from", "message", "mime"}


@pytest.fixture
def pm():
    return make_plugin_manager()


@pytest.fixture
def site(pm, helpline, tmp_path, openchs_env):
    path = openchs_site(tmp_path, "ke", helpline.api_url, channel="WENI")
    return load_site_file(path, helpline_kinds(pm), {})


def conversation(**extra) -> Conversation:
    return Conversation(id="7d1c6a3e-0b4e-4c55-9a57-2b8f4f0e9a10", site="ke",
                        client_pseudonym="client-3f2a9c", contact_urn="tel:+254700000001",
                        created_at=datetime(2024, 5, 1, 12, 0, 0), **extra)


def message(n: int = 1, text: str = "I need help", **extra) -> Message:
    return Message(id=f"m-{n:04d}", conversation_id="c", direction="to_helpline",
                   sender_message_id=f"rp-{n}", text=text,
                   created_at=datetime(2024, 5, 1, 12, 0, n), **extra)


def msg_requests(helpline):
    return [r for r in helpline.client.records("requests") if r["path"].endswith("/msg/")]


def test_message_matches_the_wire_format_field_for_field(pm, site, helpline, http):
    result = pm.hook.helpline_send_message(site=site, conversation=conversation(),
                                           message=message(), http=http)

    assert isinstance(result, SendResult) and result.status_code == 201
    [token] = helpline.client.records("tokens")
    [request] = msg_requests(helpline)
    assert request["headers"]["Authorization"] == f"Bearer {token['token']}"
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["json"] == {
        "channel": "WENI",
        "timestamp": "1714564801",  # 2024-05-01T12:00:01Z, unix seconds as text
        "session_id": "7d1c6a3e-0b4e-4c55-9a57-2b8f4f0e9a10",  # our conversation id
        "message_id": "m-0001",  # our message id
        "from": "client-3f2a9c",  # the pseudonym, never the phone number
        "message": "I need help",
        "mime": "text/plain",
    }
    assert set(request["json"]) == MSG_FIELDS
    assert "254700000001" not in json.dumps(request)


def test_token_call_is_basic_auth_without_a_body(pm, site, helpline, http):
    pm.hook.helpline_send_message(site=site, conversation=conversation(), message=message(),
                                  http=http)
    [login] = [r for r in helpline.client.records("requests") if r["path"] == "/helpline/api/"]
    assert login["method"] == "POST"
    assert login["headers"]["Authorization"].startswith("Basic ")
    assert login["json"] is None
    assert helpline.client.records("tokens")[0]["username"] == HELPLINE_USER


def test_one_token_is_fetched_and_reused_for_many_messages(pm, site, helpline, http):
    for n in range(1, 6):
        pm.hook.helpline_send_message(site=site, conversation=conversation(),
                                      message=message(n), http=http)

    assert len(helpline.client.records("tokens")) == 1
    assert len(helpline.client.records("messages")) == 5
    bearer = {r["headers"]["Authorization"] for r in msg_requests(helpline)}
    assert len(bearer) == 1


def test_a_401_refreshes_the_token_once_and_retries_once(pm, site, helpline, http):
    pm.hook.helpline_send_message(site=site, conversation=conversation(), message=message(1),
                                  http=http)
    helpline.client.set_faults(expire_tokens=True)

    pm.hook.helpline_send_message(site=site, conversation=conversation(), message=message(2),
                                  http=http)

    tokens = helpline.client.records("tokens")
    assert len(tokens) == 2
    statuses = [r["status"] for r in msg_requests(helpline)]
    assert statuses == [201, 401, 201]
    assert [m["message_id"] for m in helpline.client.records("messages")] == ["m-0001", "m-0002"]
    last = msg_requests(helpline)[-1]
    assert last["headers"]["Authorization"] == f"Bearer {tokens[-1]['token']}"


def test_a_helpline_that_keeps_refusing_is_not_asked_again_and_again(pm, site, helpline, http):
    helpline.client.set_faults(fail_status_permanent=401)

    with pytest.raises(DeliveryFailure) as failure:
        pm.hook.helpline_send_message(site=site, conversation=conversation(),
                                      message=message(), http=http)

    # Refused credentials are the site's problem, not the message's: retried later.
    assert failure.value.status_code == 401 and failure.value.retryable
    assert len(helpline.client.records("tokens")) == 2  # the first, and one refresh
    assert len(msg_requests(helpline)) == 2


def test_wrong_login_is_retried_not_dead_lettered(pm, helpline, tmp_path, http,
                                                 monkeypatch, openchs_env):
    monkeypatch.setenv("TEST_OPENCHS_PASSWORD", "wrong")
    site = load_site_file(openchs_site(tmp_path, "ke", helpline.api_url),
                          helpline_kinds(pm), {})

    with pytest.raises(DeliveryFailure) as failure:
        pm.hook.helpline_send_message(site=site, conversation=conversation(),
                                      message=message(), http=http)
    assert failure.value.status_code == 401 and failure.value.retryable
    assert helpline.client.records("messages") == []


def test_helpline_down_is_retryable(pm, site, helpline, http):
    helpline.client.set_faults(fail_next=1, fail_status=503, fail_path="msg")
    with pytest.raises(DeliveryFailure) as failure:
        pm.hook.helpline_send_message(site=site, conversation=conversation(),
                                      message=message(), http=http)
    assert failure.value.retryable and failure.value.status_code == 503


def test_attachments_travel_as_links_after_the_text(pm, site, helpline, http):
    pm.hook.helpline_send_message(
        site=site, conversation=conversation(),
        message=message(attachments=["https://files.example/a.jpg"]), http=http)
    [sent] = helpline.client.records("messages")
    assert sent["message"] == "I need help\nhttps://files.example/a.jpg"


def test_open_sends_nothing_unless_the_site_sets_a_notice(pm, site, helpline, http):
    assert pm.hook.helpline_open(site=site, conversation=conversation(), http=http) == SendResult()
    assert helpline.client.records("requests") == []


def test_open_notice_when_configured(pm, helpline, tmp_path, http, openchs_env):
    site = load_site_file(openchs_site(tmp_path, "ke", helpline.api_url,
                                       opening_notice="[escalated by the chatbot]"),
                          helpline_kinds(pm), {})
    pm.hook.helpline_open(site=site, conversation=conversation(), http=http)
    [sent] = helpline.client.records("messages")
    assert sent["message"] == "[escalated by the chatbot]"
    assert sent["message_id"] == "7d1c6a3e-0b4e-4c55-9a57-2b8f4f0e9a10/open"


@pytest.mark.parametrize(("closed_by", "notice"), [
    ("client", "[conversation closed by the client]"),
    ("timeout", "[conversation closed: no counsellor answered in time]"),
])
def test_close_sends_a_closing_notice(pm, site, helpline, http, closed_by, notice):
    result = pm.hook.helpline_close(site=site, conversation=conversation(), closed_by=closed_by,
                                    http=http)
    assert result.status_code == 201
    [sent] = helpline.client.records("messages")
    assert sent["message"] == notice
    assert sent["session_id"] == "7d1c6a3e-0b4e-4c55-9a57-2b8f4f0e9a10"
    assert sent["from"] == "client-3f2a9c"


def test_check_reports_login_accepted_or_refused(pm, site, helpline, http):
    assert pm.hook.helpline_check(site=site, http=http).ok
    helpline.client.configure(password="changed")
    result = pm.hook.helpline_check(site=site, http=http)
    assert not result.ok and "401" in result.detail
    assert HELPLINE_USER not in result.detail


def test_case_is_created_in_three_steps_and_a_retry_resumes(pm, site, helpline, http):
    case = Case(id="case-1", site="ke", client_pseudonym="client-3f2a9c",
                intake={"sex": "Female", "age": "13", "location": "Mombasa",
                        "narrative": "she is not safe at home"})
    saved: list[CaseProgress] = []
    helpline.client.set_faults(fail_resource="clients")

    with pytest.raises(DeliveryFailure) as failure:
        pm.hook.helpline_create_case(site=site, case=case, progress=CaseProgress(),
                                     save_progress=saved.append, http=http)
    assert failure.value.retryable
    assert set(saved[-1].steps) == {"reporter", "case"}

    done = pm.hook.helpline_create_case(site=site, case=case, progress=saved[-1],
                                        save_progress=saved.append, http=http)

    records = helpline.client.records()
    assert len(records["reporters"]) == 1 and len(records["cases"]) == 1
    assert len(records["clients"]) == 1
    assert done.reference == records["cases"][0]["id"]
    assert records["cases"][0]["body"]["reporter_id"] == records["reporters"][0]["id"]
    assert records["clients"][0]["body"]["case_id"] == done.reference
    assert records["cases"][0]["body"]["src_uid"] == "case-1"
