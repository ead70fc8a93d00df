"""``helpline-adapter demo``: a whole conversation against simulated peers, as a timeline.

The demo plays the chatbot (Weni/RapidPro): it escalates a child, sends messages and
acknowledges counsellor replies. The sandbox helpline hunts for a counsellor (the
first one lets the offer time out, the second takes it), replies, acknowledges and
closes. Every step the adapter takes is printed with ids and states; message text
only with ``--show-text``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import click

from .sandbox.stack import LocalStack

CONTACT = "9d4f0b3e-0c55-4c5f-8f3b-5a1d2c3e4f50"
CLIENT_MESSAGES = ("I don't feel safe at home", "Can someone talk to me?", "Thank you.")


@dataclass
class Timeline:
    show_text: bool
    started: float = field(default_factory=time.monotonic)
    seen: set = field(default_factory=set)

    def once(self, key, line: str) -> None:
        if key not in self.seen:
            self.seen.add(key)
            self.line(line)

    def line(self, text: str) -> None:
        click.echo(f"{time.monotonic() - self.started:6.2f}s  {text}")

    def text(self, value: str | None) -> str:
        return f'  "{value}"' if self.show_text and value else ""


def _wait(condition: Callable[[], bool], timeout: float, poll: Callable[[], None]) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        poll()
        if condition():
            return True
        time.sleep(0.1)
    return False


def play(stack: LocalStack, timeline: Timeline, timeout: float) -> bool:
    http = stack.session()
    helpline, rapidpro = stack.helpline.client, stack.rapidpro.client
    helpline.configure(hunting=True, counsellors=["counsellor-amani", "counsellor-baraka"],
                       auto_answer=[False, True], offer_timeout=1.0, reply_delay=0.4,
                       close_after=2, send_acks=True)
    run_uuid = str(uuid.uuid4())
    body = {
        "contact": {"uuid": CONTACT, "name": "(not stored)", "urn": "tel:+254700000000"},
        "flow": {"uuid": "f1e2d3c4-0000-4000-8000-00000000e5ca", "name": "Escalate to helpline"},
        "results": {"location": {"value": "Nairobi", "category": "Nairobi"},
                    "risk": {"value": "high", "category": "High"},
                    "message": {"value": CLIENT_MESSAGES[0], "category": "All Responses"}},
    }
    started = http.post(f"{stack.url}/v1/conversations", json=body,
                        headers={"Idempotency-Key": run_uuid}, timeout=10)
    conversation = started.json()
    cid = conversation["conversation_id"]
    timeline.line(f"chatbot   → adapter   start            {started.status_code}  "
                  f"conversation={cid} site={conversation['site']} "
                  f"client={conversation['client']}{timeline.text(CLIENT_MESSAGES[0])}")
    reply = http.post(f"{stack.url}/v1/conversations/{cid}/messages", timeout=10,
                      json={"message_id": f"{run_uuid}-2", "text": CLIENT_MESSAGES[1]})
    timeline.line(f"chatbot   → adapter   client message   {reply.status_code}  "
                  f"message={reply.json()['message_id']}{timeline.text(CLIENT_MESSAGES[1])}")
    state = {"closed_event": False, "conversation": conversation, "followed_up": False}

    def poll() -> None:
        detail = http.get(f"{stack.url}/v1/conversations/{cid}",
                          params={"include_text": "true"}, timeout=10).json()
        state["conversation"] = detail
        timeline.once(("state", detail["state"]),
                      f"adapter             state            {detail['state']}"
                      + (f"  counsellor={detail['counsellor']}" if detail["counsellor"] else ""))
        for offer in helpline.records("offers", session_id=detail["id"]):
            timeline.once(("offer", offer["counsellor"], offer["outcome"]),
                          f"helpline            hunting          offer to "
                          f"{offer['counsellor']}: {offer['outcome']}")
        for message in detail["messages"]:
            arrow = "adapter   → helpline" if message["direction"] == "to_helpline" \
                else "adapter   → chatbot "
            timeline.once(("msg", message["message_id"], message["status"]),
                          f"{arrow}  {message['direction']:<16} {message['status']:<10}"
                          f"message={message['message_id']}"
                          + (timeline.text(message.get("text"))
                             if message["status"] == "accepted" else ""))
            if message["direction"] == "to_client" and message["status"] == "sent":
                acked = http.post(f"{stack.url}/v1/conversations/{cid}/acks", timeout=10,
                                  json={"message_id": message["message_id"],
                                        "status": "delivered"})
                timeline.once(("ack", message["message_id"]),
                              f"chatbot   → adapter   ack delivered    {acked.status_code}  "
                              f"message={message['message_id']}")
                if not state["followed_up"]:
                    # The child answers the counsellor; the counsellor answers and closes.
                    state["followed_up"] = True
                    sent = http.post(f"{stack.url}/v1/conversations/{cid}/messages", timeout=10,
                                     json={"message_id": f"{run_uuid}-3",
                                           "text": CLIENT_MESSAGES[2]})
                    timeline.line(f"chatbot   → adapter   client message   {sent.status_code}  "
                                  f"message={sent.json()['message_id']}"
                                  + timeline.text(CLIENT_MESSAGES[2]))
        for start in rapidpro.records("flow_starts"):
            event = (start["body"].get("params") or start["body"].get("extra") or {}) \
                .get("event", "?")
            timeline.once(("flow", start.get("seq", id(start)), event),
                          f"adapter   → RapidPro  flow_starts      event={event}")
            state["closed_event"] = state["closed_event"] or event == "closed"
        for broadcast in rapidpro.records("broadcasts"):
            timeline.once(("broadcast", broadcast.get("seq", id(broadcast))),
                          "adapter   → RapidPro  broadcasts       counsellor reply to contact"
                          + timeline.text(broadcast["body"].get("text")))

    done = _wait(lambda: state["conversation"]["state"] == "closed" and state["closed_event"],
                 timeout, poll)
    if done:  # let the last acknowledgements land before the summary
        _wait(lambda: all(m["status"] in ("delivered", "read")
                          for m in state["conversation"]["messages"]), 5, poll)
    final = state["conversation"]
    statuses = {m["message_id"]: m["status"] for m in final["messages"]}
    timeline.line(f"done: conversation {cid} {final['state']}"
                  f" (closed by {final.get('closed_by') or '-'}), "
                  f"{len(statuses)} messages: "
                  + ", ".join(sorted(set(statuses.values()))))
    return done


@click.command("demo")
@click.option("--show-text", is_flag=True, help="Print message text too (it is made up).")
@click.option("--timeout", default=60.0, show_default=True, help="Seconds before giving up.")
def demo(show_text: bool, timeout: float) -> None:
    """Play a whole conversation against the sandbox helpline and RapidPro.

    Starts everything on free local ports (embedded Redis unless REDIS_URL is set,
    a SQLite file, gunicorn, a worker, both sandboxes), prints a timeline, stops it all.
    """
    import os

    click.echo("starting: embedded Redis, sandbox helpline and RapidPro, gunicorn, worker ...")
    stack = LocalStack(redis_url=os.environ.get("REDIS_URL"),
                       settings={"RETRY_SCHEDULE": [0.5, 1, 2, 5], "SWEEP_INTERVAL_SECONDS": 0.5})
    with stack:
        click.echo(f"adapter at {stack.url} (docs: {stack.url}/docs)\n")
        ok = play(stack, Timeline(show_text), timeout)
    if not ok:
        raise click.ClickException("the conversation did not finish in time")
