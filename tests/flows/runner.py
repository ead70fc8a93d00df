"""A small stand-in for RapidPro's flow engine, enough to walk our export: it runs
actions, evaluates templates (:mod:`tests.flows.excellent`), makes the Call Webhook
requests over real HTTP, routes switch routers by their cases and enters subflows.

It is a stand-in for *RapidPro*, never for the adapter: the webhooks reach the real API.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import requests

from .excellent import as_text, evaluate_template

WAITING, COMPLETED = "waiting", "completed"


def snakify(name: str) -> str:
    """goflow's result key for a result name: ``Helpline Start`` → ``helpline_start``."""
    return re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def case_matches(kind: str, arguments: list[str], operand: str) -> bool:
    """The subset of goflow's router tests the export uses."""
    text = operand.strip()
    if kind == "has_text":
        return bool(text)
    if kind == "has_only_text":
        return text.lower() == arguments[0].strip().lower()
    if kind == "has_any_word":
        return bool(set(_words(text)) & set(_words(" ".join(arguments))))
    if kind == "has_only_phrase":
        return _words(text) == _words(arguments[0])
    if kind.startswith("has_number"):
        try:
            number = float(text)
        except ValueError:
            return False
        values = [float(a) for a in arguments]
        return {
            "has_number_eq": lambda: number == values[0],
            "has_number_lt": lambda: number < values[0],
            "has_number_between": lambda: values[0] <= number <= values[1],
        }[kind]()
    raise AssertionError(f"router test {kind} is not known to this runner")


def route(router: dict, operand: str, *, timed_out: bool = False) -> dict:
    """The category a switch router picks for ``operand``."""
    by_uuid = {c["uuid"]: c for c in router["categories"]}
    if timed_out:
        return by_uuid[router["wait"]["timeout"]["category_uuid"]]
    for case in router["cases"]:
        if case_matches(case["type"], case["arguments"], operand):
            return by_uuid[case["category_uuid"]]
    return by_uuid[router["default_category_uuid"]]


@dataclass
class Call:
    method: str
    url: str
    headers: dict[str, str]
    body: str
    status: int
    json: Any


@dataclass
class Contact:
    uuid: str
    urn: str
    name: str = "Sample Child"
    fields: dict[str, Any] = field(default_factory=dict)
    groups: set[str] = field(default_factory=set)


@dataclass
class Session:
    """What one start (or trigger) of a flow did, until it ended or waits for input."""

    status: str = COMPLETED
    sent: list[str] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    path: list[tuple[str, str]] = field(default_factory=list)  # (flow name, category)
    waiting_in: str | None = None  # the flow waiting for the contact's next message


class Engine:
    def __init__(self, export: dict, globals_: dict[str, str]) -> None:
        self.flows = {flow["uuid"]: flow for flow in export["flows"]}
        self.fields = [f["key"] for f in export["fields"]]
        self.globals = globals_

    def flow_named(self, name: str) -> dict:
        return next(f for f in self.flows.values() if f["name"] == name)

    def start(self, flow: dict, contact: Contact, inputs: list[str | None] = (),
              params: dict | None = None) -> Session:
        session = Session()
        for key in self.fields:  # a workspace's fields: empty (null) until set
            contact.fields.setdefault(key, None)
        self._run(flow, contact, iter(list(inputs)), params or {}, session, parent=None)
        return session

    def _context(self, flow, contact, run_uuid, results, message, params, child):
        return {
            "contact": {"uuid": contact.uuid, "name": contact.name, "urn": contact.urn},
            "fields": contact.fields,
            "globals": self.globals,
            "run": {"uuid": run_uuid, "flow": {"uuid": flow["uuid"], "name": flow["name"]}},
            "results": results,
            "input": message,
            "trigger": {"params": params},
            "child": child,
        }

    def _run(self, flow: dict, contact: Contact, inputs: Iterator, params: dict,
             session: Session, parent) -> str:
        nodes = {node["uuid"]: node for node in flow["nodes"]}
        node = flow["nodes"][0]
        run_uuid = str(uuid.uuid4())
        results: dict[str, dict] = {}
        state: dict[str, Any] = {"input": None, "child": {}}

        def context():
            return self._context(flow, contact, run_uuid, results, state["input"], params,
                                 state["child"])

        visits = 0
        while node is not None:
            visits += 1
            assert visits < 200, f"{flow['name']}: a loop without a wait"
            for action in node.get("actions", []):
                outcome = self._act(action, context, contact, results, session, inputs,
                                    params)
                if outcome is not None:
                    state["child"] = {"run": {"status": outcome}}
                    if outcome == WAITING:
                        return WAITING
            router = node.get("router")
            if router is None:
                (exit_,) = node["exits"]
            else:
                timed_out = False
                if "wait" in router:
                    try:
                        text = next(inputs)
                    except StopIteration:
                        session.status, session.waiting_in = WAITING, flow["name"]
                        return WAITING
                    if text is None:
                        timed_out = True
                    else:
                        state["input"] = {"uuid": str(uuid.uuid4()), "text": text,
                                          "attachments": []}
                operand = evaluate_template(router["operand"], context())
                category = route(router, operand, timed_out=timed_out)
                session.path.append((flow["name"], category["name"]))
                if router.get("result_name"):
                    results[snakify(router["result_name"])] = {
                        "value": operand, "category": category["name"]}
                exit_ = next(e for e in node["exits"] if e["uuid"] == category["exit_uuid"])
            destination = exit_.get("destination_uuid")
            node = nodes[destination] if destination else None
        return COMPLETED

    def _act(self, action, context, contact, results, session, inputs, params):
        kind = action["type"]
        if kind == "send_msg":
            session.sent.append(evaluate_template(action["text"], context()))
        elif kind == "set_contact_field":
            contact.fields[action["field"]["key"]] = evaluate_template(action["value"],
                                                                       context())
        elif kind == "set_run_result":
            results[snakify(action["name"])] = {
                "value": evaluate_template(action["value"], context()),
                "category": action.get("category", "")}
        elif kind == "add_contact_groups":
            contact.groups |= {g["name"] for g in action["groups"]}
        elif kind == "remove_contact_groups":
            contact.groups -= {g["name"] for g in action["groups"]}
        elif kind == "call_webhook":
            self._webhook(action, context, results, session)
        elif kind == "enter_flow":
            flow = self.flows[action["flow"]["uuid"]]
            return self._run(flow, contact, inputs, params, session, parent=True)
        else:
            raise AssertionError(f"action {kind} is not known to this runner")
        return None

    def _webhook(self, action, context, results, session):
        ctx = context()
        url = evaluate_template(action["url"], ctx)
        headers = {k: evaluate_template(v, ctx) for k, v in action["headers"].items()}
        body = evaluate_template(action.get("body", ""), ctx)
        headers.setdefault("User-Agent", "RapidProMailroom/7.1 (flow export test)")
        try:
            response = requests.request(action["method"], url, headers=headers,
                                        data=body.encode(), timeout=15)
            status, payload = response.status_code, _json(response)
        except requests.ConnectionError:
            status, payload = 0, None
        session.calls.append(Call(action["method"], url, headers, body, status, payload))
        results[snakify(action["result_name"])] = {
            "value": str(status),
            "category": "Success" if 200 <= status < 300 else "Failure",
            "extra": payload}


def _json(response) -> Any:
    try:
        return response.json()
    except json.JSONDecodeError:
        return None


__all__ = ["Engine", "Contact", "Session", "Call", "route", "snakify", "as_text",
           "WAITING", "COMPLETED"]
