"""A steady stream of numbered messages, sent the way RapidPro/Weni would, and the tally.

Each conversation has its own sender thread that sends messages ``#0, #1, ...`` in
order, each with an ``Idempotency-Key``. Like Weni's mailroom, a sender retries a
message with the same key after a connection error or a 503 (honouring
``Retry-After``) and moves on only once the message was answered 2xx — so the next
message is never accepted before the previous one, and "accepted order" is well
defined. Every attempt is recorded with its start and end time and its outcome.

:func:`tally` then compares what was accepted with what the far side recorded:
arrived, lost, duplicated (the same message recorded more than once: the sandbox
helpline stores every POST, as OpenCHS's ``msg/`` does), reordered (arrived after a
later message of its conversation), and the bound a fault allows duplicates within:
the calls that were in flight when it struck (:func:`in_flight_calls`), which no
sender can know to have landed.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

from tests.integration.conftest import CONTACT, FLOWS

#: Bounds for one message: a sender gives up (and the message counts as never
#: accepted, which the tests assert against) after this long or this many attempts.
MESSAGE_DEADLINE = 90.0
MESSAGE_ATTEMPTS = 400


@dataclass
class Attempt:
    started: float
    ended: float
    status: int | None  # None: connection error or timeout
    retry_after: str | None = None


@dataclass
class Conversation:
    name: str
    site: str
    session_id: str | None = None
    accepted: list[int] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    gave_up: list[tuple[int, str]] = field(default_factory=list)


#: An answer the helpline gave this shortly before a fault may not have been recorded by
#: the worker yet (it writes each outcome a few milliseconds after the answer): such a
#: call still counts as in flight.
RECORDING_SLACK = 0.2


def msg_calls(stack) -> list[dict]:
    """The helpline's ``msg/`` requests, each with ``time`` (received) and, once
    answered, ``answered_at`` and ``status``."""
    return [r for r in stack.helpline.client.records("requests")
            if r["path"].rstrip("/").endswith("msg")]


def in_flight_calls(stack, at: float, sent_until: float | None = None,
                    slack: float = RECORDING_SLACK) -> list[dict]:
    """``msg/`` calls in flight at ``at`` (unix time): received by then (or by
    ``sent_until``, when a dying worker's last requests may still be landing, and nothing
    else sends meanwhile) and answered after ``at - slack``, or not yet at all."""
    until = at if sent_until is None else sent_until
    return [r for r in msg_calls(stack) if r["time"] <= until
            and (r.get("answered_at") is None or r["answered_at"] >= at - slack)]


def text_of(conversation: str, n: int) -> str:
    return f"{conversation}#{n}"


def number_in(text: str, conversation: str) -> int | None:
    head, _, tail = text.rpartition("#")
    if not head.endswith(conversation) or not tail.lstrip("r").isdigit():
        return None
    return int(tail.lstrip("r"))


def post_until_accepted(http: requests.Session, url: str, body: dict, headers: dict,
                        attempts: list[Attempt],
                        on_unexpected: Callable[[requests.Response], None]) -> dict | None:
    """POST until 2xx, retrying a connection error or a 503 the way a careful client
    does; every 503 must carry Retry-After. Returns the 2xx body, or None if bounded out."""
    deadline = time.monotonic() + MESSAGE_DEADLINE
    for _ in range(MESSAGE_ATTEMPTS):
        started = time.monotonic()
        try:
            response = http.post(url, json=body, headers=headers, timeout=10)
        except requests.RequestException:
            attempts.append(Attempt(started, time.monotonic(), None))
            pause = 0.1
        else:
            retry_after = response.headers.get("Retry-After")
            attempts.append(Attempt(started, time.monotonic(), response.status_code,
                                    retry_after))
            if response.ok:
                return response.json()
            if response.status_code != 503:
                on_unexpected(response)
                return None
            pause = min(float(retry_after), 2.0) if retry_after else 0.5
        if time.monotonic() + pause >= deadline:
            return None
        time.sleep(pause)  # the client's back-off, as Weni's would be
    return None


class Stream:
    """Conversations on several sites, each sending numbered messages, concurrently."""

    def __init__(self, stack, tag: str, sites: tuple[str, ...] = ("ke", "bc", "nc"),
                 per_site: int = 2, messages: int = 8, interval: float = 0.2) -> None:
        self.stack = stack
        self.messages = messages
        self.interval = interval
        self.conversations = [Conversation(f"{tag}-{site}-{i}", site)
                              for site in sites for i in range(per_site)]
        self.unexpected: list[str] = []
        self._threads = [threading.Thread(target=self._run, args=(c,), daemon=True,
                                          name=c.name) for c in self.conversations]
        self._stop = threading.Event()

    # -- driving --------------------------------------------------------------------------
    def start(self) -> Stream:
        for thread in self._threads:
            thread.start()
        return self

    def join(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._stop.set()
        alive = [t.name for t in self._threads if t.is_alive()]
        assert not alive, f"senders still running after {timeout}s: {alive}"

    def accepted_count(self) -> int:
        return sum(len(c.accepted) for c in self.conversations)

    def _run(self, conversation: Conversation) -> None:
        http = requests.Session()
        http.headers["Authorization"] = f"Token {self.stack.key}"
        for n in range(self.messages):
            if n:
                self._stop.wait(self.interval)  # the stream's pace, not synchronisation
            if self._stop.is_set():
                return
            answer = self._send(http, conversation, n)
            if answer is None:
                conversation.gave_up.append((n, "bounded out"))
                return
            if n == 0:
                conversation.session_id = answer["id"]
            conversation.accepted.append(n)

    def _send(self, http: requests.Session, conversation: Conversation, n: int) -> dict | None:
        name = conversation.name
        message_id = f"{name}-m{n}"
        if n == 0:
            url = f"{self.stack.url}/v1/conversations"
            body = {
                "contact": {"uuid": CONTACT, "name": "Child", "urn": "tel:+254700000001"},
                "flow": {"uuid": "f0a1b2c3-0000-4000-8000-000000000001", "name": "Escalate"},
                "results": {"conversation_id": {"value": name, "category": "All"}},
                "site": conversation.site, "text": text_of(name, n), "message_id": message_id,
            }
        else:
            url = f"{self.stack.url}/v1/conversations/{name}/messages"
            body = {"text": text_of(name, n), "message_id": message_id}
        return post_until_accepted(http, url, body, {"Idempotency-Key": message_id},
                                   conversation.attempts, self._unexpected)

    def _unexpected(self, response: requests.Response) -> None:
        self.unexpected.append(f"{response.status_code} {response.text[:200]}")

    # -- what the far side saw ------------------------------------------------------------
    def arrivals(self) -> dict[str, list[int]]:
        """Each conversation's message numbers in the order the helpline recorded them."""
        records = self.stack.helpline.client.records("messages")
        by_session: dict[str, list[dict]] = {}
        for record in records:
            by_session.setdefault(record["session_id"], []).append(record)
        seen = {}
        for conversation in self.conversations:
            rows = sorted(by_session.get(conversation.session_id, []),
                          key=lambda r: r["session_seq"])
            numbers = [number_in(r["message"], conversation.name) for r in rows]
            seen[conversation.name] = [n for n in numbers if n is not None]
        return seen

    def wait_delivered(self, timeout: float = 60.0) -> dict[str, list[int]]:
        """Poll the helpline until every accepted message arrived (or the deadline)."""
        deadline = time.monotonic() + timeout
        while True:
            seen = self.arrivals()
            if all(set(c.accepted) <= set(seen[c.name]) for c in self.conversations):
                return seen
            if time.monotonic() >= deadline:
                return seen
            time.sleep(0.2)

    def redeliveries(self) -> int:
        sessions = {c.session_id for c in self.conversations}
        return sum(1 for d in self.stack.helpline.client.records("duplicates")
                   if d.get("session_id") in sessions)


class ReplyStream:
    """Counsellors replying ``#r1, #r2, ...`` in several conversations, over the real
    OpenCHS callback; the tally is taken at the sandbox RapidPro (``ke`` flow starts)."""

    def __init__(self, stack, tag: str, conversations: int = 3, replies: int = 8,
                 interval: float = 0.2) -> None:
        self.stack = stack
        self.replies = replies
        self.interval = interval
        self.conversations = [Conversation(f"{tag}-ke-{i}", "ke")
                              for i in range(conversations)]
        self.unexpected: list[str] = []
        self._threads: list[threading.Thread] = []

    def open(self) -> None:
        """Start each conversation, wait for it at the helpline, and assign a counsellor."""
        for conversation in self.conversations:
            conversation.session_id = self.stack.start(conversation.name, text="hello")["id"]
        for conversation in self.conversations:
            self.stack.wait_for(lambda c=conversation: self.stack.helpline_messages(
                session_id=c.session_id), what=f"{conversation.name} at the helpline")
            outcome = self.stack.helpline.client.counsellor(
                "assign", session_id=conversation.session_id, counsellor="Amani")
            assert outcome["ok"], outcome

    def start(self) -> ReplyStream:
        self._threads = [threading.Thread(target=self._run, args=(c,), daemon=True,
                                          name=c.name) for c in self.conversations]
        for thread in self._threads:
            thread.start()
        return self

    def join(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        assert not alive, f"counsellors still replying after {timeout}s: {alive}"

    def accepted_count(self) -> int:
        return sum(len(c.accepted) for c in self.conversations)

    def _run(self, conversation: Conversation) -> None:
        deadline = time.monotonic() + MESSAGE_DEADLINE
        for n in range(1, self.replies + 1):
            if n > 1:
                time.sleep(self.interval)  # the counsellor's typing pace
            for _ in range(50):
                started = time.monotonic()
                outcome = self.stack.helpline.client.counsellor(
                    "reply", session_id=conversation.session_id,
                    text=text_of(conversation.name, n), message_id=f"{conversation.name}-r{n}")
                conversation.attempts.append(
                    Attempt(started, time.monotonic(), outcome.get("status")))
                if outcome["ok"]:
                    conversation.accepted.append(n)
                    break
                if time.monotonic() >= deadline:
                    break
                time.sleep(0.5)  # the helpline retries a refused callback later
            else:
                conversation.gave_up.append((n, "bounded out"))
                return
            if n not in conversation.accepted:
                conversation.gave_up.append((n, f"not accepted: {outcome}"))
                return

    def arrivals(self) -> dict[str, list[int]]:
        starts = [r["body"] for r in self.stack.rapidpro.client.records("flow_starts")
                  if r["body"]["flow"] == FLOWS["message"]]
        seen: dict[str, list[int]] = {c.name: [] for c in self.conversations}
        for body in starts:
            params = body["params"]
            if params["conversation_id"] in seen:
                n = number_in(params["text"], params["conversation_id"])
                if n is not None:
                    seen[params["conversation_id"]].append(n)
        return seen

    wait_delivered = Stream.wait_delivered

    def redeliveries(self) -> int:
        return 0  # RapidPro has no dedupe: a repeat would show as a duplicate


def tally(stream: Stream | ReplyStream, seen: dict[str, list[int]], fault: str,
          path: str, duration: float, **extra: Any) -> dict:
    """The row for the reliability table, computed from what was accepted and seen."""
    accepted = arrived = lost = duplicated = reordered = late_copies = unaccepted = 0
    for conversation in stream.conversations:
        got = seen.get(conversation.name, [])
        counts = Counter(got)
        accepted += len(conversation.accepted)
        arrived += sum(1 for n in conversation.accepted if counts[n])
        lost += sum(1 for n in conversation.accepted if not counts[n])
        duplicated += sum(c - 1 for c in counts.values() if c > 1)
        unaccepted += sum(1 for n in counts if n not in conversation.accepted)
        # Order is that of first arrivals. A second copy (a duplicate, counted above) may
        # land after a later message: a call that timed out at our end and that the
        # helpline stored late, after its retry and the next message. Counted apart.
        highest, first_seen = -1, set()
        for n in got:
            if n < highest:
                if n in first_seen:
                    late_copies += 1
                else:
                    reordered += 1
            first_seen.add(n)
            highest = max(highest, n)
    attempts = [a for c in stream.conversations for a in c.attempts]
    return {
        "fault": fault,
        "path": path,
        "sent": sum(len(c.accepted) + len(c.gave_up) for c in stream.conversations),
        "accepted": accepted,
        "arrived": arrived,
        "lost": lost,
        "duplicated": duplicated,
        "reordered": reordered,
        "late_copies": late_copies,
        "arrived_unaccepted": unaccepted,
        "in_flight": extra.pop("in_flight", 0),
        "redelivered_deduped": stream.redeliveries(),
        "client_retries": len(attempts) - accepted,
        "answered_503": sum(1 for a in attempts if a.status == 503),
        "connection_errors": sum(1 for a in attempts if a.status is None),
        "gave_up": sum(len(c.gave_up) for c in stream.conversations),
        "unexpected": len(stream.unexpected),
        "seconds": round(duration, 1),
        **extra,
    }


def assert_clean(row: dict, stream: Stream | ReplyStream, stack=None,
                 max_duplicates: int = 0) -> None:
    """Nothing lost, nothing out of order, nothing refused for good, and nothing twice
    beyond ``max_duplicates`` (the calls in flight when the fault struck, for a fault
    that leaves the sender unable to know whether they landed: see ``in_flight``)."""
    if stack is not None and row["lost"]:  # say where the lost ones are stuck
        row = {**row, "undelivered": [
            (d["id"], d["target"], d["action"], d["status"], d["attempts"], d["last_error"])
            for d in stack.deliveries() if d["status"] != "done"]}
    assert stream.unexpected == [], stream.unexpected[:5]
    assert row["gave_up"] == 0, [c.gave_up for c in stream.conversations if c.gave_up]
    assert row["accepted"] == row["sent"] > 0, row
    assert (row["lost"], row["reordered"]) == (0, 0), row
    assert row["duplicated"] <= max_duplicates, row
    assert row["arrived"] == row["accepted"], row
    assert row["arrived_unaccepted"] == 0, row
