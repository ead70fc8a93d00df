"""The sandbox mailroom (Weni's generic-ticketer side), run as a real subprocess.

A small stand-in ticketer, written here, plays the partner over real HTTP: it records
what the platform sends and answers per the contract (``generic-ticketer-service.md``).
The tests check what goes out (headers, keys, bodies) and how callbacks are judged.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from flask import Flask, jsonify, request
from werkzeug.serving import make_server

from adapter.sandbox.control import RunningSandbox, start_sandbox

API_TOKEN = "tok-partner-1"
SECRET = "whsec-test-1"
TICKETER = "0d7e6c2a-5b1f-4c3e-9a8d-7f6e5d4c3b2a"
TOPIC = "a1d2b8c3-9e4f-4a5b-8c6d-7e8f9a0b1c2d"
QUEUE = "c4d5e6f7-8a9b-4c0d-9e2f-3a4b5c6d7e8f"
CALLBACKS = f"/mr/tickets/types/generic/event_callback/{TICKETER}"
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
GO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")


class Ticketer:
    """A partner ticketer: Bearer auth, idempotent open, 409 on a second close."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()
        app = Flask("stand-in-ticketer")
        app.add_url_rule("/v1/tickets", "open", self._open, methods=["POST"])
        app.add_url_rule("/v1/tickets/<ext>/<action>", "act", self._act, methods=["POST"])
        app.add_url_rule("/files/<name>", "file", self._file, methods=["GET"])
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def reset(self) -> None:
        with self.lock:
            self.received: list[dict[str, Any]] = []
            self.forced: list[tuple] = []  # (status, body[, headers]) to answer first, in order
            self.by_key: dict[str, str] = {}
            self.closed: set[str] = set()
            self.reopen_supported = True

    def force(self, *answers: tuple) -> None:
        with self.lock:
            self.forced.extend(answers)

    def calls(self, suffix: str = "") -> list[dict[str, Any]]:
        with self.lock:
            return [c for c in self.received if c["path"].endswith(suffix)]

    def _record(self) -> tuple | None:
        with self.lock:
            self.received.append(
                {
                    "path": request.path,
                    "headers": dict(request.headers),
                    "raw": request.get_data(as_text=True),
                    "json": request.get_json(silent=True),
                }
            )
            if request.headers.get("Authorization") != f"Bearer {API_TOKEN}":
                return 401, {"error": "unauthorized", "message": "bad token"}
            return self.forced.pop(0) if self.forced else None

    def _open(self) -> Any:
        forced = self._record()
        if forced:
            return _forced(forced)
        key = request.headers.get("Idempotency-Key", "")
        with self.lock:
            external_id = self.by_key.setdefault(key, f"EXT-{len(self.by_key) + 1}")
        return jsonify({"external_id": external_id, "status": "open"}), 201

    def _file(self, name: str) -> Any:
        """An attachment a counsellor sends, which mailroom fetches."""
        if name != "photo.jpg":
            return jsonify({"error": "not_found", "message": "no such file"}), 404
        return b"\xff\xd8jpeg-bytes", 200, {"Content-Type": "image/jpeg"}

    def _act(self, ext: str, action: str) -> Any:
        forced = self._record()
        if forced:
            return _forced(forced)
        body = request.get_json()
        with self.lock:
            if action == "messages":
                return jsonify({"message_external_id": f"m-{len(self.received)}", "status": "ok"})
            if action == "history":
                return jsonify(
                    {"status": "history_received", "messages_received": len(body["messages"])}
                )
            if action == "close":
                if ext in self.closed:
                    return jsonify({"error": "ticket_already_closed", "message": "closed"}), 409
                self.closed.add(ext)
                return jsonify({"status": "closed"})
            if not self.reopen_supported:
                return jsonify({"error": "reopen_not_supported", "message": "no"}), 422
            self.closed.discard(ext)
            return jsonify({"status": "open"})


def _forced(answer: tuple) -> Any:
    status, body, *headers = answer
    return jsonify(body), status, (headers[0] if headers else {})


@pytest.fixture(scope="module")
def ticketer() -> Iterator[Ticketer]:
    peer = Ticketer()
    yield peer
    peer.server.shutdown()


@pytest.fixture(scope="module")
def mailroom_process(ticketer: Ticketer) -> Iterator[RunningSandbox]:
    sandbox = start_sandbox(
        "mailroom",
        "--base-url",
        ticketer.url,
        "--ticketer-uuid",
        TICKETER,
        "--topic",
        f"{TOPIC}/{QUEUE}=Counselling",
        "--project-uuid",
        "f1e2d3c4-b5a6-4978-8c9d-0a1b2c3d4e5f",
        env={"SANDBOX_MAILROOM_API_TOKEN": API_TOKEN, "SANDBOX_MAILROOM_WEBHOOK_SECRET": SECRET},
    )
    yield sandbox
    sandbox.stop()


@pytest.fixture
def mailroom(mailroom_process: RunningSandbox, ticketer: Ticketer) -> RunningSandbox:
    mailroom_process.client.reset()
    mailroom_process.client.configure(retry_backoff=0.05)
    ticketer.reset()
    return mailroom_process


def control(sandbox: RunningSandbox, path: str, body: dict | None = None) -> requests.Response:
    return requests.post(f"{sandbox.url}/_sandbox/tickets/{path}", json=body or {}, timeout=30)


def open_ticket(sandbox: RunningSandbox, **spec: Any) -> dict[str, Any]:
    spec.setdefault("contact", {"uuid": str(uuid.uuid4()), "name": "Child 7", "urns": ["tel:+1"]})
    answer = control(sandbox, "open", spec)
    assert answer.status_code == 200, answer.text
    return answer.json()


def signed(body: bytes, secret: str = SECRET, stamp: str | None = "now") -> dict[str, str]:
    headers = {"Content-Type": "application/json", "X-Request-Id": str(uuid.uuid4())}
    headers["X-Webhook-Signature"] = (
        "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    )
    if stamp == "now":
        headers["X-Webhook-Timestamp"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    elif stamp is not None:
        headers["X-Webhook-Timestamp"] = stamp
    return headers


def callback(
    sandbox: RunningSandbox, route: str, payload: Any, headers: dict[str, str] | None = None
) -> requests.Response:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return requests.post(
        f"{sandbox.url}{CALLBACKS}/{route}",
        data=raw,
        headers=signed(raw) if headers is None else headers,
        timeout=30,
    )


def agent_message(external_id: str, text: str = "I am here to help you.") -> dict[str, Any]:
    return {
        "external_id": external_id,
        "message_external_id": "counsellor-msg-1",
        "direction": "outgoing",
        "sender": {"type": "agent", "id": "c-1", "name": "Amani"},
        "text": text,
        "attachments": [],
        "sent_at": "2026-05-20T14:35:00Z",
    }


# -- platform -> ticketer ------------------------------------------------------------------


def test_open_sends_the_contract_request_and_records_the_external_id(
    mailroom: RunningSandbox, ticketer: Ticketer
) -> None:
    contact = {
        "uuid": str(uuid.uuid4()),
        "name": "Child 7",
        "urns": ["whatsapp:2547", "tel:+2547"],
        "language": "swa",
    }
    opened = open_ticket(
        mailroom,
        contact=contact,
        body="high risk",
        assignee={"email": "c@helpline.example", "name": "Amani"},
        flow={"uuid": "8c7b6a5d-4e3f-4201-9a8b-7c6d5e4f3a2b", "name": "Handoff"},
    )

    assert opened["ok"] and opened["external_id"] == "EXT-1"
    (sent,) = ticketer.calls("/v1/tickets")
    headers, body = sent["headers"], sent["json"]
    assert headers["Authorization"] == f"Bearer {API_TOKEN}"
    assert headers["X-Api-Version"] == "1" and headers["Content-Type"] == "application/json"
    assert UUID.match(headers["X-Request-Id"])
    assert headers["Idempotency-Key"] == f"open-{opened['ticket_uuid']}"
    assert list(body) == [
        "ticket_id",
        "topic",
        "contact",
        "body",
        "assignee",
        "metadata",
        "opened_at",
    ]
    assert body["ticket_id"] == opened["ticket_uuid"]
    assert body["topic"] == {"uuid": TOPIC, "name": "Counselling", "queue_uuid": QUEUE}
    assert body["contact"] == {
        "uuid": contact["uuid"],
        "name": "Child 7",
        "urn": "whatsapp:2547",
        "urns": ["whatsapp:2547", "tel:+2547"],
        "language": "swa",
    }
    assert body["assignee"] == {"email": "c@helpline.example", "name": "Amani"}
    assert body["metadata"]["webhook_base_url"] == mailroom.url + CALLBACKS
    assert body["metadata"]["project_uuid"] == "f1e2d3c4-b5a6-4978-8c9d-0a1b2c3d4e5f"
    assert body["metadata"]["flow"]["name"] == "Handoff"
    assert GO_TIME.match(body["opened_at"])
    (recorded,) = mailroom.client.records("outbound", operation="open")
    assert recorded["headers"]["Authorization"] == "Bearer ***"  # the token is never kept
    assert mailroom.client.config()["api_token"] == "***"


def test_a_409_carrying_details_external_id_is_success_and_one_without_is_not(
    mailroom: RunningSandbox, ticketer: Ticketer
) -> None:
    conflict = {"error": "ticket_already_open", "message": "open", "details": {"external_id": "E9"}}
    ticketer.force((409, conflict), (409, {"error": "ticket_already_open", "message": "open"}))

    reused = open_ticket(mailroom)
    refused = open_ticket(mailroom)

    assert reused["ok"] and reused["external_id"] == "E9"
    assert not refused["ok"] and "ticket_already_open" in refused["error"]
    tickets = requests.get(f"{mailroom.url}/_sandbox/tickets", timeout=5).json()
    assert [t["ticket_uuid"] for t in tickets] == [reused["ticket_uuid"]]


def test_open_retries_a_503_with_the_same_request_id_and_key_but_not_a_500(
    mailroom: RunningSandbox, ticketer: Ticketer
) -> None:
    ticketer.force((503, {"error": "unavailable", "message": "busy"}))
    retried = open_ticket(mailroom)
    first, second = ticketer.calls("/v1/tickets")
    assert retried["ok"] and [c["attempt"] for c in retried["calls"]] == [1, 2]
    for header in ("X-Request-Id", "Idempotency-Key"):
        assert first["headers"][header] == second["headers"][header]

    ticketer.force((500, {"error": "internal", "message": "boom"}))
    failed = open_ticket(mailroom)
    assert not failed["ok"] and len(failed["calls"]) == 1
    assert failed["error"] == "error opening generic ticket: internal: boom"


def test_retry_after_within_the_backoff_retries_whatever_the_status(
    mailroom: RunningSandbox, ticketer: Ticketer
) -> None:
    """gocommon's DefaultShouldRetry looks at Retry-After before the status: a 201 that
    carries one is sent again; a 429 without one is not retried."""
    mailroom.client.configure(retry_backoff=1.0, retry_jitter=0.0, retries=1)
    ticketer.force((201, {"external_id": "E1", "status": "open"}, {"Retry-After": "1"}))
    again = open_ticket(mailroom)
    assert [c["status"] for c in again["calls"]] == [201, 201]
    ticketer.force((429, {"error": "throttled", "message": "slow down"}))
    throttled = open_ticket(mailroom)
    assert [c["status"] for c in throttled["calls"]] == [429] and not throttled["ok"]


def test_open_fails_on_a_2xx_without_an_external_id(
    mailroom: RunningSandbox, ticketer: Ticketer
) -> None:
    ticketer.force((201, {"status": "open"}), (201, {"external_id": 12}))
    assert open_ticket(mailroom)["error"] == "generic ticketer did not return an external_id"
    assert "cannot unmarshal number" in open_ticket(mailroom)["error"]


def test_forward_carries_the_message_key_and_only_while_open(
    mailroom: RunningSandbox, ticketer: Ticketer
) -> None:
    opened = open_ticket(mailroom)
    ticket = opened["ticket_uuid"]
    msg = str(uuid.uuid4())
    answer = control(
        mailroom,
        f"{ticket}/forward",
        {
            "msg_uuid": msg,
            "text": "help me",
            "attachments": ["image/jpeg:https://x.test/a.jpg"],
            "msg_external_id": "wamid.1",
        },
    ).json()

    assert answer["ok"]
    (sent,) = ticketer.calls("/messages")
    assert sent["path"] == "/v1/tickets/EXT-1/messages"
    assert sent["headers"]["Idempotency-Key"] == f"forward-{msg}"
    body = sent["json"]
    assert body["ticket_id"] == ticket and body["external_id"] == "EXT-1"
    assert body["message_id"] == msg and body["direction"] == "incoming"
    assert body["sender"] == {
        "type": "contact",
        "id": opened["ticket"]["contact"]["uuid"],
        "name": "Child 7",
    }
    assert body["text"] == "help me"
    assert body["attachments"] == [{"url": "https://x.test/a.jpg", "content_type": "image/jpeg"}]
    assert body["metadata"] == {"source_message_external_id": "wamid.1"}
    assert GO_TIME.match(body["sent_at"])

    control(mailroom, f"{ticket}/close")
    after_close = control(mailroom, f"{ticket}/forward", {"text": "still there?"})
    assert after_close.status_code == 409
    assert len(ticketer.calls("/messages")) == 1


def test_close_and_reopen_from_the_platform(mailroom: RunningSandbox, ticketer: Ticketer) -> None:
    ticket = open_ticket(mailroom)["ticket_uuid"]

    closed = control(mailroom, f"{ticket}/close").json()
    again = control(mailroom, f"{ticket}/close").json()
    reopened = control(mailroom, f"{ticket}/reopen").json()

    assert closed["ok"] and closed["ticket_status"] == "closed"
    assert again["calls"] == []  # an already closed ticket is not closed again
    (close,) = ticketer.calls("/close")
    assert re.fullmatch(rf"close-{ticket}-\d{{18,}}", close["headers"]["Idempotency-Key"])
    assert close["json"]["closed_by"] == {"type": "platform", "id": "system"}
    assert "reason" not in close["json"] and GO_TIME.match(close["json"]["closed_at"])
    assert reopened["ok"] and reopened["ticket_status"] == "open"
    (reopen,) = ticketer.calls("/reopen")
    assert re.fullmatch(rf"reopen-{ticket}-\d{{18,}}", reopen["headers"]["Idempotency-Key"])
    assert reopen["json"]["reopened_by"] == {"type": "platform", "id": "system"}


def test_a_409_on_close_counts_as_closed_and_a_422_on_reopen_keeps_it_closed(
    mailroom: RunningSandbox, ticketer: Ticketer
) -> None:
    ticket = open_ticket(mailroom)["ticket_uuid"]
    ticketer.force((409, {"error": "ticket_already_closed", "message": "closed"}))
    assert control(mailroom, f"{ticket}/close").json()["ticket_status"] == "closed"

    ticketer.reopen_supported = False
    refused = control(mailroom, f"{ticket}/reopen").json()
    assert not refused["ok"] and refused["ticket_status"] == "closed"
    assert "reopen_not_supported" in refused["error"]


def test_history_goes_in_batches_of_50_keyed_by_batch_index(
    mailroom: RunningSandbox, ticketer: Ticketer
) -> None:
    ticket = open_ticket(mailroom)["ticket_uuid"]
    start = datetime.now(UTC) - timedelta(hours=1)
    messages = [
        {
            "uuid": str(uuid.uuid4()),
            "direction": "in" if i % 2 else "out",
            "text": f"m{i}",
            "created_on": (start + timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        for i in range(120)
    ]
    too_old = {"direction": "in", "text": "old", "created_on": "2020-01-01T00:00:00Z"}

    answer = control(mailroom, f"{ticket}/history", {"messages": [too_old, *messages]}).json()

    assert answer["ok"] and answer["sent_messages"] == 120
    batches = ticketer.calls("/history")
    assert [len(b["json"]["messages"]) for b in batches] == [50, 50, 20]
    assert [b["headers"]["Idempotency-Key"] for b in batches] == [
        f"history-{ticket}-{i}" for i in range(3)
    ]
    first = batches[0]["json"]
    assert first["contact"]["urn"] == "tel:+1" and first["contact"]["name"] == "Child 7"
    assert first["messages"][0]["sender"] == {"type": "bot"}
    assert first["messages"][0]["direction"] == "outgoing"
    assert first["messages"][1]["sender"]["type"] == "contact"
    assert first["messages"][1]["message_id"] == messages[1]["uuid"]


def test_history_one_by_one_uses_the_forward_route(
    mailroom: RunningSandbox, ticketer: Ticketer
) -> None:
    mailroom.client.configure(history_mode="one_by_one")
    ticket = open_ticket(mailroom)["ticket_uuid"]
    msg = str(uuid.uuid4())
    control(mailroom, f"{ticket}/history", {"messages": [{"uuid": msg, "text": "hi"}]})
    (sent,) = ticketer.calls("/messages")
    assert sent["headers"]["Idempotency-Key"] == f"history-{ticket}-{msg}"
    assert sent["json"]["direction"] == "incoming" and sent["json"]["message_id"] == msg


# -- ticketer -> platform callbacks -------------------------------------------------------


def test_a_signed_agent_message_is_sent_to_the_contact(mailroom: RunningSandbox) -> None:
    ticket = open_ticket(mailroom)["ticket_uuid"]

    answer = callback(mailroom, "messages", agent_message("EXT-1"))

    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "sent" and body["ticket_uuid"] == ticket
    assert UUID.match(body["message_uuid"])
    (sent,) = mailroom.client.records("messages")
    assert sent["message_uuid"] == body["message_uuid"] and sent["text"] == "I am here to help you."
    (recorded,) = mailroom.client.records("callbacks")
    assert recorded["accepted"] and recorded["route"] == "messages"


def test_a_repeated_callback_reaches_the_child_twice(mailroom: RunningSandbox) -> None:
    open_ticket(mailroom)
    raw = json.dumps(agent_message("EXT-1")).encode()
    headers = signed(raw)

    first = callback(mailroom, "messages", raw, headers)
    second = callback(mailroom, "messages", raw, headers)

    assert (first.status_code, second.status_code) == (200, 200)
    assert first.json()["message_uuid"] != second.json()["message_uuid"]
    sent = mailroom.client.records("messages", message_external_id="counsellor-msg-1")
    assert len(sent) == 2
    assert len(mailroom.client.records("callbacks", accepted=True)) == 2


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        ({"X-Webhook-Signature": "sha256=" + "0" * 64}, "invalid_signature"),
        ({}, "invalid_signature"),
        ("wrong-secret", "invalid_signature"),
        ("stale", "expired_request"),
        ("future", "expired_request"),
        ("garbage-stamp", "expired_request"),
    ],
    ids=["forged", "missing", "other-secret", "stale", "future", "unparseable-timestamp"],
)
def test_bad_signatures_are_refused_with_401(
    mailroom: RunningSandbox, headers: Any, error: str
) -> None:
    open_ticket(mailroom)
    raw = json.dumps(agent_message("EXT-1")).encode()
    six_minutes = timedelta(minutes=6)
    if headers == "wrong-secret":
        headers = signed(raw, secret="not-the-secret")
    elif headers == "stale":
        headers = signed(raw, stamp=(datetime.now(UTC) - six_minutes).isoformat())
    elif headers == "future":
        headers = signed(raw, stamp=str(int(time.time() + six_minutes.total_seconds())))
    elif headers == "garbage-stamp":
        headers = signed(raw, stamp="yesterday")

    answer = callback(mailroom, "messages", raw, {"Content-Type": "application/json", **headers})

    assert answer.status_code == 401
    assert answer.json()["error"] == error
    assert mailroom.client.records("messages") == []
    (recorded,) = mailroom.client.records("callbacks")
    assert not recorded["accepted"] and recorded["status"] == 401


def test_timestamps_accepted_as_web_go_does(mailroom: RunningSandbox) -> None:
    """Unix seconds, an offset, 4 minutes off — and none at all (tolerated in v1)."""
    open_ticket(mailroom)
    raw = json.dumps(agent_message("EXT-1")).encode()
    stamps = [
        str(int(time.time())),
        (datetime.now(UTC) - timedelta(minutes=4)).astimezone().isoformat(),
        None,
    ]
    for stamp in stamps:
        assert callback(mailroom, "messages", raw, signed(raw, stamp=stamp)).status_code == 200
    plain_hex = signed(raw)
    plain_hex["X-Webhook-Signature"] = plain_hex["X-Webhook-Signature"].removeprefix("sha256=")
    assert callback(mailroom, "messages", raw, plain_hex).status_code == 200


@pytest.mark.parametrize(
    ("route", "payload", "status", "error"),
    [
        ("messages", agent_message("EXT-404"), 404, "ticket_not_found"),
        ("tickets/close", {"external_id": "EXT-404"}, 404, "ticket_not_found"),
        ("tickets/reopen", {"external_id": "EXT-404"}, 404, "ticket_not_found"),
        ("messages", agent_message("EXT-1", text="  "), 400, "empty_message"),
        ("messages", {"text": "hi"}, 400, "invalid_payload"),
        ("messages", {"external_id": 7, "text": "hi"}, 400, "invalid_payload"),
        ("messages", {**agent_message("EXT-1"), "sent_at": "today"}, 400, "invalid_payload"),
        ("messages", b"{not json", 400, "invalid_payload"),
    ],
)
def test_callback_errors_answer_as_mailroom(
    mailroom: RunningSandbox, route: str, payload: Any, status: int, error: str
) -> None:
    open_ticket(mailroom)
    answer = callback(mailroom, route, payload)
    assert answer.status_code == status
    assert answer.json()["error"] == error and answer.json()["message"]


def test_unknown_ticketer_oversized_body_and_wrong_method(mailroom: RunningSandbox) -> None:
    other = "/mr/tickets/types/generic/event_callback/1111-2222/messages"
    raw = json.dumps(agent_message("EXT-1")).encode()
    unknown = requests.post(f"{mailroom.url}{other}", data=raw, headers=signed(raw), timeout=5)
    assert (unknown.status_code, unknown.json()["error"]) == (404, "ticketer_not_found")

    huge = json.dumps({**agent_message("EXT-1"), "text": "x" * (1 << 20)}).encode()
    too_big = callback(mailroom, "messages", huge)
    assert (too_big.status_code, too_big.json()["error"]) == (413, "payload_too_large")

    got = requests.get(f"{mailroom.url}{CALLBACKS}/messages", timeout=5)
    assert got.status_code == 405 and got.json() == {"error": "illegal method: GET"}


def test_partner_close_is_echoed_to_the_partner_then_idempotent(
    mailroom: RunningSandbox, ticketer: Ticketer
) -> None:
    ticket = open_ticket(mailroom)["ticket_uuid"]
    close = {
        "external_id": "EXT-1",
        "closed_by": {"type": "agent", "id": "c-1"},
        "reason": "resolved",
    }

    first = callback(mailroom, "tickets/close", close)
    second = callback(mailroom, "tickets/close", close)

    assert first.status_code == 200 and first.json() == {"status": "closed", "ticket_uuid": ticket}
    assert second.status_code == 200
    (echo,) = ticketer.calls("/close")  # web.go closes "externally": the partner hears it back
    assert echo["json"]["closed_by"] == {"type": "platform", "id": "system"}
    ticket_state = requests.get(f"{mailroom.url}/_sandbox/tickets/{ticket}", timeout=5).json()
    assert ticket_state["status"] == "closed"

    reopened = callback(mailroom, "tickets/reopen", {"external_id": "EXT-1"})
    assert reopened.json() == {"status": "open", "ticket_uuid": ticket}
    assert len(ticketer.calls("/reopen")) == 1


def test_a_failed_close_echo_fails_the_callback_and_the_ticket_stays_open(
    mailroom: RunningSandbox, ticketer: Ticketer
) -> None:
    ticket = open_ticket(mailroom)["ticket_uuid"]
    ticketer.force((500, {"error": "internal", "message": "boom"}))

    answer = callback(mailroom, "tickets/close", {"external_id": "EXT-1"})

    assert answer.status_code == 500 and answer.json()["error"] == "close_failed"
    ticket_state = requests.get(f"{mailroom.url}/_sandbox/tickets/{ticket}", timeout=5).json()
    assert ticket_state["status"] == "open"


def test_an_agent_message_to_a_closed_ticket_is_still_sent(mailroom: RunningSandbox) -> None:
    ticket = open_ticket(mailroom)["ticket_uuid"]
    control(mailroom, f"{ticket}/close")
    answer = callback(mailroom, "messages", agent_message("EXT-1"))
    assert answer.status_code == 200
    (sent,) = mailroom.client.records("messages")
    assert sent["ticket_status"] == "closed"


def test_fail_next_refuses_callbacks_and_records_them(mailroom: RunningSandbox) -> None:
    open_ticket(mailroom)
    mailroom.client.set_faults(fail_next=2, fail_status=503, retry_after=1)
    statuses = [
        callback(mailroom, "messages", agent_message("EXT-1")).status_code for _ in range(3)
    ]
    assert statuses == [503, 503, 200]
    recorded = mailroom.client.records("callbacks")
    assert [r["refused_by_fault"] for r in recorded] == [True, True, False]
    assert len(mailroom.client.records("messages")) == 1


def test_skip_webhook_hmac_accepts_unsigned_callbacks(mailroom: RunningSandbox) -> None:
    open_ticket(mailroom)
    mailroom.client.configure(skip_webhook_hmac="yes")
    unsigned = callback(mailroom, "messages", agent_message("EXT-1"), {})
    assert unsigned.status_code == 200


def test_names_and_urns_reach_the_ticketer_as_mailroom_sends_them(
    mailroom: RunningSandbox, ticketer: Ticketer
) -> None:
    """Under URN redaction open hides the name behind the contact id, but the forward's
    sender.name is the contact display (the real name); without a name it is the URN."""
    mailroom.client.configure(redact_urns=True)
    named = {"uuid": str(uuid.uuid4()), "id": 42, "name": "Real Name", "urns": ["tel:+2547001"]}
    ticket = open_ticket(mailroom, contact=named)["ticket_uuid"]
    control(mailroom, f"{ticket}/forward", {"text": "hi"})
    assert ticketer.calls("/v1/tickets")[0]["json"]["contact"]["name"] == "42"
    assert ticketer.calls("/v1/tickets")[0]["json"]["contact"]["urns"] == ["tel:+2547001"]
    assert ticketer.calls("/messages")[0]["json"]["sender"]["name"] == "Real Name"

    mailroom.client.configure(redact_urns=False)
    nameless = {"uuid": str(uuid.uuid4()), "urns": ["tel:+2547002"]}
    ticket = open_ticket(mailroom, contact=nameless)["ticket_uuid"]
    control(mailroom, f"{ticket}/forward", {"text": "hi"})
    assert "name" not in ticketer.calls("/v1/tickets")[1]["json"]["contact"]
    assert ticketer.calls("/messages")[1]["json"]["sender"]["name"] == "+2547002"


def test_attachments_are_fetched_and_a_failed_fetch_is_a_502(
    mailroom: RunningSandbox, ticketer: Ticketer
) -> None:
    open_ticket(mailroom)
    photo = {
        **agent_message("EXT-1", text=""),
        "attachments": [{"url": f"{ticketer.url}/files/photo.jpg"}],
    }
    missing = {**photo, "attachments": [{"url": f"{ticketer.url}/files/gone.jpg"}]}

    fetched = callback(mailroom, "messages", photo)
    failed = callback(mailroom, "messages", missing)

    assert fetched.status_code == 200
    assert (failed.status_code, failed.json()["error"]) == (502, "attachment_fetch_failed")
    (sent,) = mailroom.client.records("messages")
    assert sent["attachments"] == [
        {"url": f"{ticketer.url}/files/photo.jpg", "content_type": "image/jpeg", "size": 12}
    ]


def test_webhook_base_url_is_left_out_without_a_domain_and_https_with_one(
    mailroom: RunningSandbox, ticketer: Ticketer
) -> None:
    mailroom.client.configure(domain="")
    open_ticket(mailroom)
    mailroom.client.configure(domain="mailroom.weni.example")
    open_ticket(mailroom)
    first, second = (call["json"]["metadata"] for call in ticketer.calls("/v1/tickets"))
    assert "webhook_base_url" not in first
    assert second["webhook_base_url"] == f"https://mailroom.weni.example{CALLBACKS}"
