"""Simulated counsellors: hunting, offers that time out, replies and closes.

The real helpline posts each new chat to a hunting queue; a free counsellor's screen
shows a notification; if nobody takes it within a timeout the notification closes and
hunting restarts with the next counsellor (the seed document). Once a counsellor takes
the chat they reply and eventually close it. This module plays that part so the
adapter's assignment timeouts, ordering and close handling can be tested end to end.

Everything happens on background threads driven by one :class:`Scheduler`, never in
the request that delivered the client's message, just like the real helpline. Tests
can also drive each step synchronously (``assign``/``reply``/``close``/``ack``).

Config keys used (see ``helpline.DEFAULT_CONFIG``): ``hunting``, ``counsellors``,
``max_chats``, ``auto_answer``, ``answer_delay``, ``offer_timeout``, ``reply_delay``,
``replies``, ``close_after``, ``send_acks``, ``ack_delay``, ``callback_minimal``,
``seed``.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import queue
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from adapter.sandbox.base import Records
from adapter.sandbox.callbacks import CallbackSender

log = logging.getLogger(__name__)


class Scheduler:
    """Run callables after a delay: one timer thread feeding a few worker threads.

    A thread per timer would not survive a benchmark with thousands of chats, and the
    workers may block for a while on callbacks that retry. All threads are daemons so
    a sandbox stops at once on SIGTERM instead of finishing queued callbacks.
    """

    def __init__(self, workers: int = 16) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Callable[..., Any], tuple]] = []
        self._order = itertools.count()
        self._ready: queue.SimpleQueue[tuple[Callable[..., Any], tuple]] = queue.SimpleQueue()
        threading.Thread(target=self._time, name="sandbox-timer", daemon=True).start()
        for number in range(workers):
            threading.Thread(target=self._work, name=f"sandbox-{number}", daemon=True).start()

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on a worker after ``delay`` seconds."""
        with self._cond:
            due = time.monotonic() + max(delay, 0.0)
            heapq.heappush(self._heap, (due, next(self._order), fn, args))
            self._cond.notify()

    def cancel_all(self) -> None:
        """Drop every task not yet started (tasks already running finish)."""
        with self._cond:
            self._heap.clear()
            with contextlib.suppress(queue.Empty):
                while True:  # workers may empty it concurrently, hence Empty
                    self._ready.get_nowait()

    def _time(self) -> None:
        while True:
            with self._cond:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(timeout)
                _, _, fn, args = heapq.heappop(self._heap)
                self._ready.put((fn, args))

    def _work(self) -> None:
        while True:
            fn, args = self._ready.get()
            try:
                fn(*args)
            except Exception:  # a background task must not die silently
                log.exception("sandbox background task %s failed", getattr(fn, "__name__", fn))


class UnknownSession(LookupError):
    """A control call named a session the helpline never saw and gave no recipient."""


@dataclass(eq=False)
class Session:
    """One chat as the helpline sees it.

    ``state``: ``idle`` (hunting off) → ``hunting`` → ``active`` → ``closed``;
    ``cancelled`` after a sandbox reset so stale background tasks stop.
    """

    session_id: str
    address: str | None
    state: str = "idle"
    counsellor: str | None = None
    next_index: int = 0
    waiting: int = 0  # client messages the counsellor has not answered yet
    replies: int = 0  # automatic replies sent (for ``close_after``)
    hunting_seq: int = 0  # when hunting began, in the pool's order (the queue's order)
    send_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def public(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "address": self.address,
            "state": self.state,
            "counsellor": self.counsellor,
            "waiting": self.waiting,
            "replies": self.replies,
        }


class CounsellorPool:
    """The helpline's counsellors and the chats they hunt, take, answer and close."""

    def __init__(
        self,
        config: Callable[[], Mapping[str, Any]],
        records: Records,
        sender: CallbackSender,
        scheduler: Scheduler,
    ) -> None:
        self._config = config
        self._records = records
        self._sender = sender
        self._scheduler = scheduler
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}
        self._load: dict[str, int] = {}  # counsellor -> chats taken and not closed
        self._rotor = 0  # spreads new chats over counsellors
        self._script_pos = 0
        self._random = random.Random(config()["seed"])
        self._hunting_order = itertools.count(1)

    # -- background behaviour -------------------------------------------------------

    def client_message(self, session_id: str, address: str | None, message_id: str) -> None:
        """A client message was accepted: maybe ack it, start hunting or plan a reply."""
        config = self._config()
        session = self._session(session_id, address)
        if config["send_acks"]:
            self._scheduler.call_later(config["ack_delay"], self._auto_ack, session, message_id)
        if not config["hunting"]:
            return
        with self._lock:
            session.waiting += 1
            start_hunting = session.state == "idle"
            reply_now = session.state == "active"
            if start_hunting:
                session.state = "hunting"
                session.hunting_seq = next(self._hunting_order)
        if start_hunting:
            self._scheduler.call_later(0, self._offer, session)
        elif reply_now:
            self._scheduler.call_later(config["reply_delay"], self._auto_reply, session)

    def _offer(self, session: Session) -> None:
        """Offer the chat to the next free counsellor, who takes it or lets it time out."""
        config = self._config()
        with self._lock:
            if session.state != "hunting":
                return
            counsellor = self._next_free(session, config)
            takes = counsellor is not None and self._takes_offer(config)
            if takes:
                self._load[counsellor] = self._load.get(counsellor, 0) + 1
        if counsellor is None:
            self._record_offer(session, None, "no_counsellor_free")
            self._scheduler.call_later(config["offer_timeout"], self._offer, session)
        elif takes:
            self._scheduler.call_later(config["answer_delay"], self._take, session, counsellor)
        else:
            self._scheduler.call_later(
                config["offer_timeout"], self._offer_timed_out, session, counsellor
            )

    def _offer_timed_out(self, session: Session, counsellor: str) -> None:
        self._record_offer(session, counsellor, "timed_out")
        self._offer(session)

    def _take(self, session: Session, counsellor: str) -> None:
        """The counsellor accepted the offer: tell the adapter, then answer the backlog."""
        with self._lock:
            if session.state != "hunting":  # assigned by a test or reset meanwhile
                self._release(counsellor)
                return
        self._record_offer(session, counsellor, "accepted")
        self._assign(session, counsellor, reserved=True)

    def _record_offer(self, session: Session, counsellor: str | None, outcome: str) -> None:
        item = {"session_id": session.session_id, "counsellor": counsellor, "outcome": outcome}
        self._records.add("offers", item)

    def _auto_reply(self, session: Session) -> None:
        """Answer the client's waiting messages with the next scripted reply."""
        config = self._config()
        with session.send_lock:
            with self._lock:
                if session.state != "active" or session.waiting == 0:
                    return
                session.waiting = 0
                session.replies += 1
                number, counsellor = session.replies, session.counsellor
            scripted = config["replies"]
            self._send_reply(
                session.session_id,
                session.address,
                scripted[(number - 1) % len(scripted)],
                counsellor,
                config,
            )
            if config["close_after"] and number >= config["close_after"]:
                self._close(session)

    def _auto_ack(self, session: Session, message_id: str) -> None:
        with session.send_lock:
            self._send_ack(session.session_id, message_id, "delivered")

    # -- synchronous control (tests drive the helpline side deterministically) --------

    def assign(self, session_id: str, counsellor: str | None = None) -> dict[str, Any]:
        """A counsellor takes the chat now (hunting stops); returns the callback outcome."""
        session = self._session(session_id, None)
        name = counsellor or self._config()["counsellors"][0]
        return self._assign(session, name, reserved=False)

    def reply(
        self,
        session_id: str,
        text: str,
        *,
        counsellor: str | None = None,
        recipient: str | None = None,
        message_id: str | None = None,
        minimal: bool | None = None,
        message_type: str = "text",
    ) -> dict[str, Any]:
        """A counsellor sends ``text`` now (with ``message_type`` ``image``, ``audio``, ...:
        a link to media); returns the callback outcome."""
        with self._lock:
            session = self._sessions.get(session_id)
        address = recipient or (session.address if session else None)
        if address is None:
            raise UnknownSession(session_id)
        config = dict(self._config())
        if minimal is not None:
            config["callback_minimal"] = minimal
        name = counsellor or (session.counsellor if session else None) or config["counsellors"][0]
        if session is None:
            return self._send_reply(session_id, address, text, name, config, message_id,
                                    message_type)
        with session.send_lock:
            return self._send_reply(session_id, address, text, name, config, message_id,
                                    message_type)

    def close(self, session_id: str) -> dict[str, Any]:
        """The counsellor ends the chat now; returns the callback outcome."""
        session = self._session(session_id, None)
        with session.send_lock:
            return self._close(session)

    def ack(self, session_id: str, message_id: str, status: str = "delivered") -> dict[str, Any]:
        """Acknowledge a client message now; returns the callback outcome."""
        session = self._session(session_id, None)
        with session.send_lock:
            return self._send_ack(session_id, message_id, status)

    def queue_position(self, session_id: str) -> dict[str, Any] | None:
        """What the hunting daemon says of a chat: its state and, while it is hunting, its
        position among the chats not yet taken (1: next), in the order hunting began.
        None for a chat it never saw."""
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            position = None
            if session.state == "hunting":
                position = 1 + sum(1 for other in self._sessions.values()
                                   if other.state == "hunting"
                                   and other.hunting_seq < session.hunting_seq)
            return {"session_id": session_id, "state": session.state, "position": position}

    def sessions(self) -> list[dict[str, Any]]:
        """Every chat's public state."""
        with self._lock:
            return [session.public() for session in self._sessions.values()]

    def reset(self) -> None:
        """Forget every chat and stop pending background work."""
        self._scheduler.cancel_all()
        with self._lock:
            for session in self._sessions.values():
                session.state = "cancelled"
            self._sessions.clear()
            self._load.clear()
            self._rotor = 0  # so a test's first chat is offered to the first counsellor
            self._script_pos = 0
            self._random = random.Random(self._config()["seed"])

    # -- shared steps -----------------------------------------------------------------

    def _session(self, session_id: str, address: str | None) -> Session:
        """The session (created if new, address learnt from the first message)."""
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                session = Session(session_id, address, next_index=self._rotor)
                self._sessions[session_id] = session
                self._rotor += 1
            elif address and not session.address:
                session.address = address
            return session

    def _assign(self, session: Session, counsellor: str, *, reserved: bool) -> dict[str, Any]:
        config = self._config()
        with session.send_lock:
            with self._lock:
                if session.counsellor and session.state == "active":
                    self._release(session.counsellor)
                if not reserved:
                    self._load[counsellor] = self._load.get(counsellor, 0) + 1
                session.state, session.counsellor = "active", counsellor
                reply_due = config["hunting"] and session.waiting > 0
            body = {"session_id": session.session_id, "counsellor": counsellor}
            outcome = self._sender.send("assign", body, session_id=session.session_id)
        if reply_due:
            self._scheduler.call_later(config["reply_delay"], self._auto_reply, session)
        return outcome

    def _close(self, session: Session) -> dict[str, Any]:
        """Mark closed, free the counsellor and send the close callback (send_lock held)."""
        with self._lock:
            if session.state == "active" and session.counsellor:
                self._release(session.counsellor)
            if session.state != "cancelled":
                session.state = "closed"
        return self._sender.send(
            "close", {"chat_source": "HELPLINE"}, session_id=session.session_id
        )

    def _send_reply(
        self,
        session_id: str,
        address: str | None,
        text: str,
        counsellor: str | None,
        config: Mapping[str, Any],
        message_id: str | None = None,
        message_type: str = "text",
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"recipient": address, "message_type": message_type,
                                "content": text}
        if not config["callback_minimal"]:
            body.update(
                session_id=session_id,
                message_id=message_id or f"hl-{uuid.uuid4().hex}",
                counsellor=counsellor,
            )
        return self._sender.send("message", body, session_id=session_id)

    def _send_ack(self, session_id: str, message_id: str, status: str) -> dict[str, Any]:
        body = {"session_id": session_id, "message_id": message_id, "status": status}
        return self._sender.send("ack", body, session_id=session_id)

    def _next_free(self, session: Session, config: Mapping[str, Any]) -> str | None:
        """The next counsellor after the last one offered who has room (lock held)."""
        names = config["counsellors"]
        for step in range(len(names)):
            index = (session.next_index + step) % len(names)
            if self._load.get(names[index], 0) < config["max_chats"]:
                session.next_index = index + 1
                return names[index]
        return None

    def _takes_offer(self, config: Mapping[str, Any]) -> bool:
        """Scripted answers first (list of booleans), then the probability (lock held)."""
        answer = config["auto_answer"]
        if isinstance(answer, list):
            if self._script_pos < len(answer):
                self._script_pos += 1
                return bool(answer[self._script_pos - 1])
            return True
        return self._random.random() < float(answer)

    def _release(self, counsellor: str) -> None:
        self._load[counsellor] = max(self._load.get(counsellor, 0) - 1, 0)
