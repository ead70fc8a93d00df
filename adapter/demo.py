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
#: What the child's second message carries besides its words: a drawing, as RapidPro
#: gives it ("<content type>:<url>"). Never fetched: the helpline gets the link.
ATTACHMENT = "image/jpeg:https://media.example.org/demo/drawing.jpg"


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
                      json={"message_id": f"{run_uuid}-2", "text": CLIENT_MESSAGES[1],
                            "attachments": [ATTACHMENT]})
    timeline.line(f"chatbot   → adapter   client message   {reply.status_code}  "
                  f"message={reply.json()['message_id']} attachments=1"
                  f"{timeline.text(CLIENT_MESSAGES[1])}")
    state = {"closed_event": False, "conversation": conversation, "followed_up": False}

    def poll() -> None:
        detail = http.get(f"{stack.url}/v1/conversations/{cid}",
                          params={"include_text": "true"}, timeout=10).json()
        state["conversation"] = detail
        timeline.once(("state", detail["state"]),
                      f"adapter             state            {detail['state']}"
                      + (f"  counsellor={detail['counsellor']}" if detail["counsellor"] else ""))
        for part in helpline.records("messages", session_id=detail["id"]):
            if part.get("mime") and part["mime"] != "text/plain":  # an attachment's own msg/
                timeline.once(("part", part["message_id"]),
                              f"adapter   → helpline  msg/ attachment  mime={part['mime']} "
                              f"message_id={part['message_id']}")
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


WENI_MESSAGES = ("I don't feel safe at home", "Are you a real person?",
                 "One more thing, please.")


def play_weni(stack: LocalStack, timeline: Timeline, timeout: float) -> bool:
    """The same child, handed over by Weni's mailroom (the weni-ticketer dialect): a ticket
    opened, messages forwarded, history sent; the counsellor replies and closes (the close
    echoed back); the platform reopens, the child writes, the platform closes."""
    import requests

    http = stack.session()
    helpline = stack.helpline.client
    mailroom = stack.mailroom_sandbox
    assert mailroom is not None
    control = f"{mailroom.url}/_sandbox"
    helpline.configure(hunting=True, counsellors=["counsellor-amani", "counsellor-baraka"],
                       auto_answer=[False, True], offer_timeout=1.0, reply_delay=0.4,
                       close_after=None, send_acks=False)

    def platform(path: str, body: dict | None = None) -> dict:
        return requests.post(f"{control}/{path}", json=body or {}, timeout=60).json()

    opened = platform("tickets/open", {"contact": {"name": "(not stored)",
                                                   "urns": ["whatsapp:254700000000"]},
                                       "body": WENI_MESSAGES[0]})
    if not opened.get("ok"):
        timeline.line(f"mailroom  → adapter   open ticket      failed: {opened.get('error')}")
        return False
    ticket, cid = opened["ticket_uuid"], opened["external_id"]
    timeline.line(f"mailroom  → adapter   POST /v1/tickets {opened['status']}  ticket={ticket} "
                  f"external_id={cid}{timeline.text(WENI_MESSAGES[0])}")
    forwarded = platform(f"tickets/{ticket}/forward", {"text": WENI_MESSAGES[1]})
    timeline.line(f"mailroom  → adapter   …/messages       {forwarded['status']}  "
                  f"message={forwarded['response'].get('message_external_id')}"
                  + timeline.text(WENI_MESSAGES[1]))
    history = platform(f"tickets/{ticket}/history", {"messages": [
        {"direction": "out", "text": "Hello! I am the helpline bot."},
        {"direction": "in", "text": "I need to talk to someone."}]})
    last = history["attempts"][-1]["calls"][-1] if history["attempts"][-1]["calls"] else {}
    timeline.line(f"mailroom  → adapter   …/history        {last.get('status')}  "
                  f"messages_received={(last.get('response') or {}).get('messages_received')}")
    state = {"phase": "first", "conversation": {"state": "requested", "messages": []}}

    def poll() -> None:
        detail = http.get(f"{stack.url}/v1/conversations/{cid}", timeout=10).json()
        state["conversation"] = detail
        timeline.once(("state", state["phase"], detail["state"]),
                      f"adapter             state            {detail['state']}"
                      + (f"  counsellor={detail['counsellor']}" if detail["counsellor"] else ""))
        for offer in helpline.records("offers", session_id=cid):
            timeline.once(("offer", offer["counsellor"], offer["outcome"]),
                          f"helpline            hunting          offer to "
                          f"{offer['counsellor']}: {offer['outcome']}")
        for callback in mailroom.client.records("callbacks"):
            timeline.once(("callback", callback["path"], callback.get("body")),
                          f"adapter   → mailroom  {callback['route']:<16} {callback['status']}  "
                          f"signed={bool(callback['signature'])}"
                          + (f" message={callback['message_uuid']}"
                             if callback.get("message_uuid") else ""))
        for call in mailroom.client.records("outbound"):
            if call["operation"] in ("close_echo", "reopen_echo"):
                timeline.once(("echo", call["request_id"]),
                              f"mailroom  → adapter   {call['operation']:<16} {call['status']}  "
                              f"(the platform echoes our {call['operation'][:-5]}: answered "
                              f"at once)")
        if state["phase"] == "first" and any(m["sender"].get("type") == "agent"
                                             for m in mailroom.client.records("messages")):
            state["phase"] = "closing-first"  # the counsellor answered: they end the chat
            helpline.counsellor("close", session_id=cid)
            timeline.line("helpline            counsellor       closes the chat")
        if state["phase"] == "closing-first" and detail["state"] == "closed" and any(
                t["status"] == "closed" for t in mailroom.client.records("tickets")):
            state["phase"] = "reopened"
            again = platform(f"tickets/{ticket}/reopen")
            timeline.line(f"mailroom  → adapter   …/reopen         "
                          f"{(again.get('calls') or [{}])[-1].get('status')}  ticket={ticket}")
            sent = platform(f"tickets/{ticket}/forward", {"text": WENI_MESSAGES[2]})
            timeline.line(f"mailroom  → adapter   …/messages       {sent['status']}  "
                          f"message={sent['response'].get('message_external_id')}"
                          + timeline.text(WENI_MESSAGES[2]))
            helpline.counsellor("assign", session_id=cid, counsellor="counsellor-baraka")
            helpline.counsellor("reply", session_id=cid, text="I am still here for you.")
        if state["phase"] == "reopened" and any(
                m["text"] == "I am still here for you."
                for m in mailroom.client.records("messages")):
            state["phase"] = "closing"
            closed = platform(f"tickets/{ticket}/close")
            timeline.line(f"mailroom  → adapter   …/close          "
                          f"{(closed.get('calls') or [{}])[-1].get('status')}  ticket={ticket}")

    done = _wait(lambda: state["phase"] == "closing"
                 and state["conversation"]["state"] == "closed", timeout, poll)
    poll()
    final = state["conversation"]
    sent = len(mailroom.client.records("messages"))
    timeline.line(f"done: ticket {ticket} conversation {cid} {final['state']} "
                  f"(closed by {final.get('closed_by') or '-'}), {sent} messages to the child, "
                  f"{len(final['messages'])} messages in all")
    return done


#: The demo site's hours for ``--after-hours``: open every day 08:00-17:00 in Nairobi,
#: but closed today (a holiday), so an escalation now is after hours, whatever the time.
AFTER_HOURS_ZONE = "Africa/Nairobi"


def after_hours_table(outside: str = "hold") -> str:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    today = datetime.now(ZoneInfo(AFTER_HOURS_ZONE)).date().isoformat()
    days = "\n".join(f'{day} = ["08:00-17:00"]' for day in (
        "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"))
    return (f'timezone = "{AFTER_HOURS_ZONE}"\noutside = "{outside}"\n{days}\n'
            f'closed = ["{today}"]')


def play_after_hours(stack: LocalStack, timeline: Timeline, timeout: float) -> bool:
    """A child escalates while the helpline is closed: the start is accepted, the
    chatbot hears ``after_hours`` with the next opening at once, and nothing reaches the
    helpline. Then the site's schedule changes (today's closure lifted, the worker
    restarted with the new file): the held conversation opens, its messages in order."""
    from .sandbox.stack import write_demo_site

    http = stack.session()
    helpline, rapidpro = stack.helpline.client, stack.rapidpro.client
    body = {"contact": {"uuid": CONTACT, "urn": "tel:+254700000000"},
            "results": {"location": {"value": "Nairobi", "category": "Nairobi"},
                        "message": {"value": CLIENT_MESSAGES[0], "category": "All"}}}
    started = http.post(f"{stack.url}/v1/conversations", json=body, timeout=10)
    conversation = started.json()
    cid, session = conversation["conversation_id"], conversation["id"]
    after = conversation.get("after_hours") or {}
    timeline.line(f"chatbot   → adapter   start            {started.status_code}  "
                  f"conversation={cid} state={conversation['state']} "
                  f"after_hours: held={after.get('held')} "
                  f"next_opening={after.get('next_opening_local')}"
                  f"{timeline.text(CLIENT_MESSAGES[0])}")
    reply = http.post(f"{stack.url}/v1/conversations/{cid}/messages", timeout=10,
                      json={"message_id": f"{cid}-2", "text": CLIENT_MESSAGES[1]})
    timeline.line(f"chatbot   → adapter   client message   {reply.status_code}  "
                  f"message={reply.json()['message_id']}{timeline.text(CLIENT_MESSAGES[1])}")

    def heard() -> list[dict]:
        return [(s["body"].get("params") or {}) for s in rapidpro.records("flow_starts")
                if (s["body"].get("params") or {}).get("event") == "after_hours"]

    if not _wait(lambda: heard(), timeout, lambda: None):
        return False
    event = heard()[0]
    timeline.line(f"adapter   → RapidPro  flow_starts      event=after_hours held={event['held']}"
                  f" next_opening={event['next_opening']} "
                  f"({event['next_opening_local']} {event['timezone']})")
    _wait(lambda: False, 2.0, lambda: None)  # a few relay sweeps: still nothing sent
    arrived = helpline.records("messages", session_id=session)
    timeline.line(f"helpline            messages         {len(arrived)} "
                  f"(held until the opening)")
    if arrived:
        return False

    write_demo_site(stack.workdir / "countries", stack.helpline.api_url, stack.rapidpro.url)
    for process in [p for p in stack.processes if p.name == "worker"]:
        process.close()
        stack.processes.remove(process)
    stack.start_worker()
    timeline.line("operator            site schedule    today's closure lifted; worker "
                  "restarted")

    def opened() -> bool:
        return len(helpline.records("messages", session_id=session)) >= 2

    if not _wait(opened, timeout, lambda: None):
        return False
    for message in sorted(helpline.records("messages", session_id=session),
                          key=lambda m: m["session_seq"]):
        timeline.line(f"adapter   → helpline  message          #{message['session_seq']}  "
                      f"message={message['message_id']}{timeline.text(message['message'])}")
    final = http.get(f"{stack.url}/v1/conversations/{cid}", timeout=10).json()
    timeline.line(f"done: conversation {cid} {final['state']} (opened after hours, "
                  f"its messages in order)")
    return final["state"] in ("waiting", "active")


DIALECT_CHOICES = ("rapidpro", "weni-ticketer")


@click.command("demo")
@click.option("--show-text", is_flag=True, help="Print message text too (it is made up).")
@click.option("--timeout", default=60.0, show_default=True, help="Seconds before giving up.")
@click.option("--dialect", type=click.Choice(DIALECT_CHOICES), default="rapidpro",
              show_default=True,
              help="How the chatbot talks: RapidPro webhooks, or Weni's generic ticketer "
                   "(the sandbox mailroom plays the platform).")
@click.option("--after-hours", is_flag=True,
              help="Escalate while the site is closed ([hours]): the after_hours event, "
                   "the conversation held, then opened when the schedule changes.")
def demo(show_text: bool, timeout: float, dialect: str, after_hours: bool) -> None:
    """Play a whole conversation against the sandbox helpline and RapidPro (or mailroom).

    Starts everything on free local ports (embedded Redis unless REDIS_URL is set,
    a SQLite file, gunicorn, a worker, the sandboxes), prints a timeline, stops it all.
    """
    import os

    weni = dialect == "weni-ticketer"
    click.echo("starting: embedded Redis, sandbox helpline and RapidPro"
               + (", sandbox mailroom" if weni else "") + ", gunicorn, worker ...")
    if after_hours and weni:
        raise click.UsageError("--after-hours plays the rapidpro dialect")
    stack = LocalStack(redis_url=os.environ.get("REDIS_URL"), mailroom=weni,
                       mailroom_args=("--retry-backoff", "0.5"),
                       settings={"RETRY_SCHEDULE": [0.5, 1, 2, 5], "SWEEP_INTERVAL_SECONDS": 0.5},
                       hours=after_hours_table() if after_hours else "")
    with stack:
        click.echo(f"adapter at {stack.url} (docs: {stack.url}/docs)\n")
        play_it = play_after_hours if after_hours else (play_weni if weni else play)
        ok = play_it(stack, Timeline(show_text), timeout)
    if not ok:
        raise click.ClickException("the conversation did not finish in time")
