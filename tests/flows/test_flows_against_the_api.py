"""The export's webhooks against our API: every URL, method and header is a documented
route; walked through with sample values, the flows' requests are accepted by a real
adapter over HTTP; and the events the adapter sends start the export's flows with the
params those flows read.

RapidPro is played by :mod:`tests.flows.runner`; the adapter is the real app (its
database, Redis, routes), served by a real HTTP server.
"""

from __future__ import annotations

import re
import threading
import uuid

import pytest
import requests
from werkzeug.serving import make_server

from adapter import protocol
from adapter.delivery import performers
from adapter.dialects.rapidpro_api.outbound import build_request
from adapter.extensions import db
from adapter.idempotency import HEADERS as IDEMPOTENCY_HEADERS
from adapter.models import Case, Conversation, Delivery
from adapter.outbox import add_chatbot_event
from adapter.sites import CHATBOT_EVENTS
from tests.conftest import make_client
from tests.support.sites import write_site

from .conftest import CHAT, ESCALATION, EVENT_FLOWS, guide_site_config, load_export
from .excellent import evaluate_template, references
from .runner import COMPLETED, WAITING, Contact, Engine, route, snakify

SITE = "ke"
#: What an after_hours event says of the next opening (docs/conversation.md).
AFTER_HOURS = {"next_opening": "2026-03-30T05:00:00Z",
               "next_opening_local": "2026-03-30T08:00:00+03:00", "timezone": "Africa/Nairobi"}


def webhook_nodes():
    """(flow, node, action, status split or None) for every call_webhook."""
    for flow in load_export()["flows"]:
        by_uuid = {n["uuid"]: n for n in flow["nodes"]}
        for node in flow["nodes"]:
            for action in node.get("actions", []):
                if action["type"] != "call_webhook":
                    continue
                failure = next(c for c in node["router"]["categories"]
                               if c["name"] == "Failure")
                exit_ = next(e for e in node["exits"] if e["uuid"] == failure["exit_uuid"])
                split = by_uuid.get(exit_.get("destination_uuid"))
                operand = f"@results.{snakify(action['result_name'])}.value"
                if split is not None and (split.get("router") or {}).get("operand") != operand:
                    split = None
                yield flow, node, action, split


def operation_for(spec: dict, method: str, path: str) -> tuple[str, dict]:
    for template, item in spec["paths"].items():
        pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path) and method.lower() in item:
            return template, item[method.lower()]
    raise AssertionError(f"{method} {path} is no route of /openapi.json")


@pytest.mark.parametrize("db_backend", ["sqlite"])
def test_every_webhook_is_a_documented_route_with_its_headers(client):
    spec = client.get("/openapi.json").json
    schemes = spec["components"]["securitySchemes"]
    checked = 0
    for flow, _node, action, split in webhook_nodes():
        sample = {"globals": {"helpline_adapter_url": "", "helpline_adapter_key": "KEY"},
                  "fields": {"helpline_conversation": "CONVERSATION"},
                  "input": {"uuid": "INPUT"}, "run": {"uuid": "RUN"}}
        path = evaluate_template(action["url"], sample)
        assert action["url"].startswith("@globals.helpline_adapter_url/"), \
            "the adapter's address comes from the global"
        template, operation = operation_for(spec, action["method"], path)
        where = f"{flow['name']}: {action['method']} {template}"
        # Authorization: the route's security scheme, the way it reads it
        (requirement,) = operation["security"]
        (scheme_name,) = requirement
        scheme = schemes[scheme_name]
        assert (scheme["type"], scheme["in"]) == ("apiKey", "header"), where
        headers = {k: evaluate_template(v, sample) for k, v in action["headers"].items()}
        assert headers.pop(scheme["name"]) == "Token KEY", where
        assert headers.pop("Content-Type") in operation["requestBody"]["content"], where
        answers = operation["responses"]
        successes = [code for code in answers if code.startswith("2")]
        assert successes, where
        accept = headers.pop("Accept")
        assert all(accept in answers[code]["content"] for code in successes), where
        # the one header the document does not list: the adapter's idempotency key
        key_headers = [h for h in headers if h in IDEMPOTENCY_HEADERS]
        assert key_headers and set(headers) == set(key_headers), where
        # every status a flow branches on is an answer the route documents
        if split is not None:
            for case in split["router"]["cases"]:
                assert case["type"] == "has_number_eq"
                assert case["arguments"][0] in answers, f"{where}: {case['arguments']}"
        checked += 1
    assert checked == 3  # start, message, close


# ---- a real adapter over HTTP ---------------------------------------------------------

@pytest.fixture
def site_config() -> dict:
    """The guide's ``[rapidpro]`` table, with a token, in flow_starts mode so that the
    counsellor's messages start the export's message flow too."""
    table = guide_site_config()["rapidpro"]
    return {**table, "token": "rp-token", "message_mode": "flow_starts"}


@pytest.fixture
def adapter_app(app_factory, tmp_path, site_config):
    folder = tmp_path / "flow-sites"
    write_site(folder, SITE, name="Kenya (flows)", plugin="loopback",
               routing={"locations": ["Kenya", "Nairobi"], "urn_prefixes": ["tel:+254"]},
               helpline={"url": "http://127.0.0.1:9/helpline"},
               rapidpro=site_config, policies={"assignment_timeout": 300})
    return app_factory(countries=folder)


@pytest.fixture
def adapter_url(adapter_app):
    server = make_server("127.0.0.1", 0, adapter_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.port}"
    server.shutdown()
    thread.join()


@pytest.fixture
def key(adapter_app) -> str:
    return make_client(adapter_app, name="weni", read_text=True)


@pytest.fixture
def engine(adapter_url, key) -> Engine:
    return Engine(load_export(), {"helpline_adapter_url": adapter_url,
                                  "helpline_adapter_key": key})


def kenyan_child() -> Contact:
    return Contact(uuid=str(uuid.uuid4()), urn="tel:+254700000123")


def conversation_seen(adapter_url, key, conversation_id) -> dict:
    answer = requests.get(f"{adapter_url}/v1/conversations/{conversation_id}",
                          params={"include_text": "true"},
                          headers={"Authorization": f"Token {key}"}, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_a_child_escalates_chats_and_ends_the_chat(engine, adapter_url, key):
    child = kenyan_child()
    escalate = engine.flow_named(ESCALATION)
    text = 'my "uncle" hurts me — I need help'
    session = engine.start(escalate, child,
                           ["yes", "Kenya", text, "are you there?", "END CHAT"])

    assert session.status == COMPLETED
    start, first, second, close = session.calls
    assert start.status == 201, start.json
    conversation_id = start.json["conversation_id"]
    assert start.json["site"] == SITE and start.json["state"] == "requested"
    assert start.headers["Idempotency-Key"] == conversation_id  # the run's uuid
    assert (first.status, second.status) == (202, 202), (first.json, second.json)
    assert first.url == f"{adapter_url}/v1/conversations/{conversation_id}/messages"
    assert close.url == f"{adapter_url}/v1/conversations/{conversation_id}/close"
    assert close.status == 200 and close.json["state"] == "closed"
    assert ("Helpline: Escalate", "Success") in session.path
    assert (CHAT, "End Chat") in session.path
    assert child.fields["helpline_conversation"] == "" and not child.groups

    seen = conversation_seen(adapter_url, key, conversation_id)
    assert [m["text"] for m in seen["messages"]] == [text, "are you there?"]
    assert seen["closed_by"] == "client"

    # Weni's mailroom retrying a message (same key, same body): the first answer again,
    # and no second message
    again = requests.post(first.url, headers=first.headers, data=first.body.encode(),
                          timeout=10)
    assert (again.status_code, again.json()) == (202, first.json)
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert len(conversation_seen(adapter_url, key, conversation_id)["messages"]) == 2


def test_a_child_already_in_a_chat_is_not_escalated_twice(engine, adapter_url, key):
    child = kenyan_child()
    first = engine.start(engine.flow_named(ESCALATION), child, ["yes", "Kenya", "hello"])
    assert first.status == WAITING and len(first.calls) == 2
    conversation_id = child.fields["helpline_conversation"]

    again = engine.start(engine.flow_named(ESCALATION), child, ["it is me again"])
    assert again.status == WAITING and again.waiting_in == CHAT
    (message,) = again.calls  # no second start: the message joins the open conversation
    assert message.status == 202
    assert message.url.endswith(f"/v1/conversations/{conversation_id}/messages")
    assert ("Helpline: Escalate", "In Chat") in again.path
    seen = conversation_seen(adapter_url, key, conversation_id)
    assert [m["text"] for m in seen["messages"]] == ["hello", "it is me again"]


def test_an_unroutable_child_is_told_to_call_116(engine):
    child = Contact(uuid=str(uuid.uuid4()), urn="tel:+999555000111")
    session = engine.start(engine.flow_named(ESCALATION), child, ["yes", "Atlantis"])

    assert session.status == COMPLETED
    (start,) = session.calls
    assert start.status == 422 and start.json["code"] == "unroutable"
    assert ("Helpline: Escalate", "Unroutable") in session.path
    assert "116" in session.sent[-1]
    assert not child.fields["helpline_conversation"]


def test_a_refusal_calls_nothing(engine):
    child = kenyan_child()
    session = engine.start(engine.flow_named(ESCALATION), child, ["hapana"])
    assert session.status == COMPLETED and not session.calls
    assert "116" in session.sent[-1]


def test_the_status_splits_route_the_adapters_answers():
    """Each status an answer can have goes where the guide says."""
    expected = {
        ESCALATION: {"422": "Unroutable", "503": "Busy", "429": "Busy", "0": "Other",
                     "400": "Other", "401": "Other"},
        CHAT: {"409": "Closed", "404": "Closed", "503": "Busy", "429": "Busy",
               "400": "Other", "0": "Other"},
    }
    for flow, node, _action, split in webhook_nodes():
        if flow["name"] not in expected or split is None:
            continue
        for status, category in expected[flow["name"]].items():
            assert route(split["router"], status)["name"] == category, (flow["name"], status)
        # and a 2xx never gets to the split: the webhook's own router says Success
        assert route(node["router"], "Success")["name"] == "Success"


def test_the_events_the_adapter_sends_start_the_export_flows(engine, adapter_app,
                                                            adapter_url, key):
    child = kenyan_child()
    session = engine.start(engine.flow_named(ESCALATION), child, ["yes", "Kenya", "hello"])
    assert session.status == WAITING and session.waiting_in == CHAT
    conversation_id = child.fields["helpline_conversation"]

    answer = requests.post(f"{adapter_url}/v1/cases", timeout=10, json={
        "conversation_id": conversation_id,
        "contact": {"uuid": child.uuid, "urn": child.urn},
        "intake": {"age": 13, "narrative": "sample narrative"}},
        headers={"Authorization": f"Token {key}"})
    assert answer.status_code == 202, answer.text
    case_id = answer.json()["case_id"]

    # What the helpline's side does, through the adapter's own protocol: each queues an
    # event for RapidPro in the outbox.
    with adapter_app.app_context():
        conversation = db.session.execute(db.select(Conversation).where(
            Conversation.external_id == conversation_id)).scalar_one()
        site = protocol.site_of(conversation)
        protocol.no_counsellor(conversation, site)
        add_chatbot_event(site, conversation, "after_hours", {  # as a held start makes it
            **protocol._event_params(conversation), **AFTER_HOURS, "held": True})
        protocol.accept_counsellor_message(conversation, text="Hello, I am here.",
                                           message_id="c-1", counsellor="counsellor-7",
                                           attachments=[], actor="test")
        case = db.session.get(Case, case_id)
        performers._case_event(case, "case_created")
        performers._case_event(case, "case_failed")
        protocol.close_from_helpline(conversation, "resolved", "test")
        db.session.commit()

        starts = []
        for delivery in db.session.execute(db.select(Delivery).where(
                Delivery.target == "chatbot").order_by(Delivery.created_at,
                                                       Delivery.id)).scalars():
            message = performers._message(delivery)  # as the worker reads it
            endpoint, body = build_request(site, delivery, conversation, message)
            assert endpoint == "flow_starts.json"
            starts.append(body)

    export_flows = {f["uuid"]: f for f in load_export()["flows"]}
    events = [body["params"]["event"] for body in starts]
    assert sorted(events) == sorted(EVENT_FLOWS), events
    outcome = {}
    for body in starts:
        event, params = body["params"]["event"], body["params"]
        flow = export_flows[body["flow"]]
        assert flow["name"] == EVENT_FLOWS[event]
        assert body["contacts"] == [child.uuid]
        read = {path.split(".", 2)[2] for node in flow["nodes"]
                for template in _templates(node) for path in references(template)
                if path.startswith("trigger.params.")}
        assert read <= set(params), f"{flow['name']} reads {read - set(params)}"
        run = engine.start(flow, child, [], params=params)
        outcome[event] = (run.status, run.waiting_in, run.sent)

    assert outcome["no_counsellor"][:2] == (WAITING, CHAT)  # keep_waiting: back to chat
    assert outcome["assigned"][:2] == (WAITING, CHAT)
    assert "counsellor-7" in outcome["assigned"][2][0]
    assert outcome["message"][:2] == (WAITING, CHAT)
    assert outcome["message"][2] == ["counsellor-7: Hello, I am here."]
    assert outcome["after_hours"][:2] == (WAITING, CHAT)  # held: the chat goes on
    assert AFTER_HOURS["next_opening_local"] in outcome["after_hours"][2][0]
    assert outcome["case_created"][:2] == (WAITING, CHAT)  # the chat goes on
    assert outcome["case_failed"][:2] == (WAITING, CHAT)
    assert outcome["closed"][:2] == (COMPLETED, None)
    assert child.fields["helpline_conversation"] == "" and not child.groups

    # A chat loop still running elsewhere (say, no closed flow was configured) ends at
    # the next message: the adapter answers 409.
    child.fields["helpline_conversation"] = conversation_id
    late = engine.start(engine.flow_named(CHAT), child, ["hello?"])
    assert late.status == COMPLETED
    assert late.calls[0].status == 409 and late.calls[0].json["code"] == "conversation_closed"
    assert (CHAT, "Closed") in late.path


def test_no_counsellor_on_a_closing_site_ends_the_chat(engine):
    child = kenyan_child()
    child.fields["helpline_conversation"] = "c-1"
    flow = engine.flow_named(EVENT_FLOWS["no_counsellor"])
    run = engine.start(flow, child, [], params={"event": "no_counsellor", "closed": True,
                                                "conversation_id": "c-1"})
    assert run.status == COMPLETED and child.fields["helpline_conversation"] == ""
    assert "116" in run.sent[-1]


def test_after_hours_on_a_closing_site_ends_the_chat_with_the_opening(engine):
    child = kenyan_child()
    child.fields["helpline_conversation"] = "c-1"
    flow = engine.flow_named(EVENT_FLOWS["after_hours"])
    run = engine.start(flow, child, [], params={"event": "after_hours", "held": False,
                                                "conversation_id": "c-1", **AFTER_HOURS})
    assert run.status == COMPLETED and child.fields["helpline_conversation"] == ""
    assert "116" in run.sent[-1] and AFTER_HOURS["next_opening_local"] in run.sent[-1]


def test_the_guides_site_config_loads_and_names_the_export_flows(adapter_app, export):
    """The excerpt of docs/rapidpro.md, loaded by the adapter as a site file's table:
    every event flow it names is the export's flow for that event."""
    with adapter_app.app_context():
        configured = dict(protocol.sites().get(SITE).rapidpro.flows)
    by_name = {f["name"]: f["uuid"] for f in export["flows"]}
    assert set(configured) <= set(CHATBOT_EVENTS)
    assert configured == {event: by_name[name] for event, name in EVENT_FLOWS.items()}
    assert guide_site_config()["rapidpro"]["flows"] == configured


def _templates(node: dict) -> list[str]:
    out = []
    for action in node.get("actions", []):
        out += [action[k] for k in ("text", "value", "url", "body")
                if isinstance(action.get(k), str)]
    if node.get("router"):
        out.append(node["router"]["operand"])
    return out
