"""The openchs plugin against the sandbox helpline over real HTTP: the wire format
byte for byte, one session token reused, refreshed once on a 401."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime

import pytest

from adapter.delivery import helpline_calls
from adapter.sites import SiteRegistry, load_site_file
from adapter.state import AdapterState
from plugins.api import (
    Attachment,
    CaseProgress,
    CaseView,
    ConversationView,
    DeliveryFailure,
    MessageView,
    SendResult,
)
from plugins.manager import helpline_kinds, make_plugin_manager

from .conftest import HELPLINE_USER, openchs_site

MSG_FIELDS = {"channel", "timestamp", "session_id", "message_id", "from", "message", "mime"}


@pytest.fixture
def pm():
    return make_plugin_manager()


@pytest.fixture
def site(pm, helpline, tmp_path, openchs_env):
    path = openchs_site(tmp_path, "ke", helpline.api_url, channel="WENI")
    return load_site_file(path, helpline_kinds(pm), {})


def conversation() -> ConversationView:
    """What the core gives the plugin: our id, the pseudonym, no contact (not shared)."""
    return ConversationView(id="7d1c6a3e-0b4e-4c55-9a57-2b8f4f0e9a10", site="ke",
                            client="client-3f2a9c", contact=None, state="requested",
                            risk=None, location=None, counsellor=None,
                            created_at=datetime(2024, 5, 1, 12, 0, 0), closed_at=None,
                            closed_by=None)


def message(n: int = 1, text: str = "I need help", attachments=()) -> MessageView:
    return MessageView(id=f"m-{n:04d}", sender_message_id=f"rp-{n}", conversation_id="c",
                       text=text, attachments=tuple(attachments), sender="client-3f2a9c",
                       created_at=datetime(2024, 5, 1, 12, 0, n))


def step(pm, site, name, http, **arguments):
    """One call through the core, as a delivery makes it (its common rules included)."""
    state = AdapterState(pm=pm, kinds=helpline_kinds(pm), sites=SiteRegistry([site]))
    return helpline_calls.call(state, site, name, http, **arguments)


def check(pm, site, http):
    state = AdapterState(pm=pm, kinds=helpline_kinds(pm), sites=SiteRegistry([site]))
    return helpline_calls.check(state, site, http)


def msg_requests(helpline):
    return [r for r in helpline.client.records("requests") if r["path"].endswith("/msg/")]


def test_message_matches_the_wire_format_field_for_field(pm, site, helpline, http):
    result = step(pm, site, "send_message", http, conversation=conversation(),
                                           message=message())

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
    step(pm, site, "send_message", http, conversation=conversation(), message=message())
    [login] = [r for r in helpline.client.records("requests") if r["path"] == "/helpline/api/"]
    assert login["method"] == "POST"
    assert login["headers"]["Authorization"].startswith("Basic ")
    assert login["json"] is None
    assert helpline.client.records("tokens")[0]["username"] == HELPLINE_USER


def test_one_token_is_fetched_and_reused_for_many_messages(pm, site, helpline, http):
    for n in range(1, 6):
        step(pm, site, "send_message", http, conversation=conversation(),
                                      message=message(n))

    assert len(helpline.client.records("tokens")) == 1
    assert len(helpline.client.records("messages")) == 5
    bearer = {r["headers"]["Authorization"] for r in msg_requests(helpline)}
    assert len(bearer) == 1


def test_a_401_refreshes_the_token_once_and_retries_once(pm, site, helpline, http):
    step(pm, site, "send_message", http, conversation=conversation(), message=message(1))
    helpline.client.set_faults(expire_tokens=True)

    step(pm, site, "send_message", http, conversation=conversation(), message=message(2))

    tokens = helpline.client.records("tokens")
    assert len(tokens) == 2
    statuses = [r["status"] for r in msg_requests(helpline)]
    assert statuses == [201, 401, 201]
    assert [m["message_id"] for m in helpline.client.records("messages")] == ["m-0001", "m-0002"]
    last = msg_requests(helpline)[-1]
    assert last["headers"]["Authorization"] == f"Bearer {tokens[-1]['token']}"


@pytest.mark.parametrize("refusal", [403, 200])
def test_an_expired_session_refused_another_way_also_logs_in_again(pm, site, helpline, http,
                                                                   refusal):
    """Some helpline builds refuse an expired session with 403, or with 200 and an
    ``errors`` body (nothing stored): either way one new login and one resend, and the
    message is stored once."""
    helpline.client.configure(expired_token_status=refusal)
    step(pm, site, "send_message", http, conversation=conversation(), message=message(1))
    helpline.client.set_faults(expire_tokens=True)

    step(pm, site, "send_message", http, conversation=conversation(), message=message(2))

    tokens = helpline.client.records("tokens")
    assert len(tokens) == 2
    assert [r["status"] for r in msg_requests(helpline)] == [201, refusal, 201]
    assert [m["message_id"] for m in helpline.client.records("messages")] == ["m-0001", "m-0002"]
    assert msg_requests(helpline)[-1]["headers"]["Authorization"] == \
        f"Bearer {tokens[-1]['token']}"


def test_a_helpline_that_keeps_refusing_is_not_asked_again_and_again(pm, site, helpline, http):
    helpline.client.set_faults(fail_status_permanent=401)

    with pytest.raises(DeliveryFailure) as failure:
        step(pm, site, "send_message", http, conversation=conversation(),
                                      message=message())

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
        step(pm, site, "send_message", http, conversation=conversation(),
                                      message=message())
    assert failure.value.status_code == 401 and failure.value.retryable
    assert helpline.client.records("messages") == []


def test_helpline_down_is_retryable(pm, site, helpline, http):
    helpline.client.set_faults(fail_next=1, fail_status=503, fail_path="msg")
    with pytest.raises(DeliveryFailure) as failure:
        step(pm, site, "send_message", http, conversation=conversation(),
                                      message=message())
    assert failure.value.retryable and failure.value.status_code == 503


def test_attachments_travel_as_links_after_the_text(pm, site, helpline, http):
    step(pm, site, "send_message", http, conversation=conversation(),
        message=message(attachments=["https://files.example/a.jpg"]))
    [sent] = helpline.client.records("messages")
    assert sent["message"] == "I need help\nhttps://files.example/a.jpg"


def _media(*items):
    return tuple(Attachment(url, content_type) for url, content_type in items)


def with_media(media) -> MessageView:
    return replace(message(attachments=[m.url for m in media]), media=media)


def test_a_message_in_parts_is_its_text_then_one_post_per_attachment(pm, site, helpline, http):
    media = _media(("https://files.example/a.jpg", "image/jpeg"),
                   ("https://files.example/b", "image"), ("https://files.example/c", None))
    saved = []
    step(pm, site, "send_message_parts", http, conversation=conversation(),
         message=with_media(media), progress=CaseProgress(), save_progress=saved.append)

    sent = helpline.client.records("messages")
    assert [(m["message_id"], m["message"], m["mime"]) for m in sent] == [
        ("m-0001", "I need help", "text/plain"),
        ("m-0001/1", "https://files.example/a.jpg", "image/jpeg"),
        ("m-0001/2", "https://files.example/b", "application/octet-stream"),
        ("m-0001/3", "https://files.example/c", "application/octet-stream")]
    assert all(set(m) >= MSG_FIELDS for m in sent)
    assert [sorted(p.steps) for p in saved] == [["text"], ["1", "text"], ["1", "2", "text"],
                                               ["1", "2", "3", "text"]]
    assert saved[0].steps["text"] == sent[0]["id"]  # the helpline's row id


def test_a_message_in_parts_skips_the_parts_already_accepted(pm, site, helpline, http):
    media = _media(("https://files.example/a.jpg", "image/jpeg"))
    view = with_media(media)
    step(pm, site, "send_message_parts", http, conversation=conversation(), message=view,
         progress=CaseProgress(steps={"text": "101"}), save_progress=lambda p: None)
    assert [m["message_id"] for m in helpline.client.records("messages")] == ["m-0001/1"]


def test_a_message_in_parts_made_again_after_a_refused_token_resends_nothing_accepted(
        pm, site, helpline, http):
    """The core refreshes the token and calls the step again with the progress it saved."""
    media = _media(("https://files.example/a.jpg", "image/jpeg"))
    view = with_media(media)
    # The text is accepted, then the attachment's post meets an expired session (401).
    saved = []

    def expire_after_text(progress):
        saved.append(progress)
        if len(saved) == 1:
            helpline.client.set_faults(unauthorized_next=1)

    step(pm, site, "send_message_parts", http, conversation=conversation(), message=view,
         progress=CaseProgress(), save_progress=expire_after_text)
    ids = [m["message_id"] for m in helpline.client.records("messages")]
    assert ids == ["m-0001", "m-0001/1"]  # the text once, although the step ran twice
    assert [r["status"] for r in msg_requests(helpline)] == [201, 401, 201]


def test_open_sends_nothing_unless_the_site_sets_a_notice(pm, site, helpline, http):
    assert step(pm, site, "open", http, conversation=conversation()) == SendResult()
    assert helpline.client.records("requests") == []


def test_open_notice_when_configured(pm, helpline, tmp_path, http, openchs_env):
    site = load_site_file(openchs_site(tmp_path, "ke", helpline.api_url,
                                       opening_notice="[escalated by the chatbot]"),
                          helpline_kinds(pm), {})
    step(pm, site, "open", http, conversation=conversation())
    [sent] = helpline.client.records("messages")
    assert sent["message"] == "[escalated by the chatbot]"
    assert sent["message_id"] == "7d1c6a3e-0b4e-4c55-9a57-2b8f4f0e9a10/open"


@pytest.mark.parametrize(("closed_by", "notice"), [
    ("client", "[conversation closed by the client]"),
    ("timeout", "[conversation closed: no counsellor answered in time]"),
])
def test_close_sends_a_closing_notice(pm, site, helpline, http, closed_by, notice):
    result = step(pm, site, "close", http, conversation=conversation(), closed_by=closed_by)
    assert result.status_code == 201
    [sent] = helpline.client.records("messages")
    assert sent["message"] == notice
    assert sent["session_id"] == "7d1c6a3e-0b4e-4c55-9a57-2b8f4f0e9a10"
    assert sent["from"] == "client-3f2a9c"


def test_check_reports_login_accepted_or_refused(pm, site, helpline, http):
    assert check(pm, site, http).ok
    helpline.client.configure(password="changed")
    result = check(pm, site, http)
    assert not result.ok and "401" in result.detail
    assert HELPLINE_USER not in result.detail


def test_case_is_created_in_three_steps_and_a_retry_resumes(pm, site, helpline, http):
    case = CaseView(id="case-1", conversation_id=None, client="client-3f2a9c", urn=None,
                    intake={"sex": "Female", "age": "13", "location": "Mombasa",
                            "narrative": "she is not safe at home"},
                    created_at=datetime(2024, 5, 1, 12, 0, 0))
    saved: list[CaseProgress] = []
    helpline.client.set_faults(fail_resource="clients")

    with pytest.raises(DeliveryFailure) as failure:
        step(pm, site, "create_case", http, case=case, progress=CaseProgress(),
                                     save_progress=saved.append)
    assert failure.value.retryable
    assert set(saved[-1].steps) == {"reporter", "case"}

    done = step(pm, site, "create_case", http, case=case, progress=saved[-1],
                                        save_progress=saved.append)

    records = helpline.client.records()
    assert len(records["reporters"]) == 1 and len(records["cases"]) == 1
    assert len(records["clients"]) == 1
    assert done.reference == records["cases"][0]["id"]
    assert records["cases"][0]["body"]["reporter_id"] == records["reporters"][0]["id"]
    assert records["clients"][0]["body"]["case_id"] == done.reference
    assert records["cases"][0]["body"]["src_uid"] == "case-1"


def test_a_retry_carries_the_same_message_id_yet_openchs_stores_it_again(pm, site, helpline,
                                                                         http):
    """Our message id (OpenCHS's ``src_uid``) and timestamp are the same on every attempt,
    so a helpline could deduplicate; OpenCHS's ``msg/`` does not, and stores the retry
    as a second message (the sandbox does as OpenCHS does)."""
    for _ in range(2):
        step(pm, site, "send_message", http, conversation=conversation(), message=message(1))

    stored = helpline.client.records("messages")
    assert [(m["message_id"], m["timestamp"]) for m in stored] == [
        (stored[0]["message_id"], stored[0]["timestamp"])] * 2
    assert stored[0]["message_id"] == "m-0001"
    assert helpline.client.records("duplicates") == []
