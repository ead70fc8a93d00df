"""A property of every body field: whatever text it holds, the answer is never a 5xx.

For the start, message, close, ack, case and compat chat routes, Hypothesis puts an
arbitrary text (any code point: NUL, lone surrogates, and lengths around each column's
limit) in one string field of an otherwise valid body (explicit fields, ``contact.*``,
``input.*``, ``results.*.value`` and ``.category``, ``intake.*``, a ``results`` key) and
sends it as JSON over the WSGI test client, on SQLite and PostgreSQL. The database is
up, so a 503 would be bad input taken for an outage; text with a character no column
can store must be a 400. The 503 that a real outage gives is checked in
tests/core/test_errors.py (an unreachable database, a read-only one, a connection cut).
"""

from __future__ import annotations

import copy
import itertools
import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.compat.conftest import login, make_account
from tests.conftest import make_client

#: Every code point, surrogates (category Cs) included.
ANY_CHARACTER = st.characters(exclude_categories=())
#: Around each limit: risk 64, location 120, ids 200, urn 255, attachments 2048, text 10 000.
LENGTHS = (63, 64, 65, 119, 120, 121, 199, 200, 201, 254, 255, 256, 2048, 2049, 10_000, 10_001)
TEXT = st.one_of(
    st.text(ANY_CHARACTER, max_size=30),
    st.builds(lambda piece, n: (piece * n)[:n], st.text(ANY_CHARACTER, min_size=1, max_size=3),
              st.sampled_from(LENGTHS)),
    st.builds(lambda before, bad, after: before + bad + after,
              st.text(ANY_CHARACTER, max_size=10), st.sampled_from(["\x00", "\ud800", "\udfff"]),
              st.text(ANY_CHARACTER, max_size=10)),
    st.builds(lambda prefix, rest: prefix + rest,
              st.sampled_from(["https://h.example/", "image/jpeg:https://h.example/", "geo:",
                               "file:///", "javascript:", "tel:+254"]),
              st.text(ANY_CHARACTER, max_size=20)),
)
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
RESULTS_KEY = "<any results key>"
RAPIDPRO = ("contact.uuid", "contact.urn", "contact.name", "flow.uuid", "flow.name", "run.uuid",
            "run.created_on", "channel.name", "path.0.node",
            "results.location.value", "results.location.category", "results.risk.value",
            "results.message.value", "results.message.category", "results.conversation_id.value",
            "results.message_id.value", RESULTS_KEY)
INPUT = ("input.uuid", "input.type", "input.urn", "input.text", "input.attachments.0",
         "input.created_on", "input.channel.name")
INTAKE_RESULTS = ("results.age.value", "results.sex.value", "results.sex.category",
                  "results.narrative.value", "results.category.category",
                  "results.language.value", "results.consent.value", "results.case_id.value",
                  "results.is_reporter.value")
INTAKE = ("intake.narrative", "intake.sex", "intake.category", "intake.location",
          "intake.language", "intake.age_group", "intake.age", "intake.consent.share")


def _rapidpro(n: int) -> dict:
    return {
        "contact": {"uuid": f"contact-{n}", "name": "A child", "urn": "tel:+254711000000"},
        "flow": {"uuid": "flow-1", "name": "Escalate"},
        "run": {"uuid": f"run-{n}", "created_on": "2024-05-01T10:00:00Z"},
        "path": [{"node": "n1", "time": "2024-05-01T10:00:00Z"}],
        "channel": {"uuid": "ch-1", "name": "WhatsApp"},
        "results": {
            "location": {"value": "Nairobi", "category": "Nairobi"},
            "risk": {"value": "high", "category": "High"},
            "message": {"value": "I need help", "category": "All Responses"},
            "conversation_id": {"value": f"prop-{n}", "category": "All Responses"},
            "message_id": {"value": f"prop-m-{n}", "category": "All Responses"},
        },
        "input": {"uuid": f"input-{n}", "type": "msg", "urn": "tel:+254711000000",
                  "text": "I need help", "created_on": "2024-05-01T10:00:01Z",
                  "channel": {"uuid": "ch-1", "name": "WhatsApp"},
                  "attachments": ["image/jpeg:https://media.example.org/a.jpg"]},
    }


def _start(n: int) -> dict:
    return _rapidpro(n)


def _explicit_start(n: int) -> dict:
    return {"conversation_id": f"prop-x-{n}", "message_id": f"prop-xm-{n}", "site": "lb",
            "location": "Nairobi", "risk": "high", "text": "hello",
            "attachments": ["https://media.example.org/a.jpg"],
            "intake": {"narrative": "what happened", "sex": "female"}}


def _case(n: int) -> dict:
    body = _rapidpro(n)
    body["results"].update({"age": {"value": "13", "category": "Has Number"},
                            "sex": {"value": "girl", "category": "Female"},
                            "narrative": {"value": "what happened", "category": "All Responses"},
                            "category": {"value": "abuse", "category": "Abuse"},
                            "language": {"value": "sw", "category": "All Responses"},
                            "consent": {"value": "yes", "category": "Yes"},
                            "case_id": {"value": f"case-{n}", "category": "All Responses"},
                            "is_reporter": {"value": "yes", "category": "Yes"}})
    return body


def _explicit_case(n: int) -> dict:
    return {"site": "lb", "case_id": f"case-x-{n}", "location": "Nairobi",
            "intake": {"age": 12, "age_group": "10-14", "sex": "female", "category": "abuse",
                       "location": "Nairobi", "language": "sw", "narrative": "n",
                       "consent": {"share": True}, "is_reporter": True}}


def _message(n: int) -> dict:
    body = _rapidpro(n)
    body["results"].pop("conversation_id")
    return body


def _explicit_message(n: int) -> dict:
    return {"message_id": f"prop-xm-{n}", "text": "hello",
            "attachments": ["image/jpeg:https://media.example.org/a.jpg"]}


def _chat(n: int) -> dict:
    return {"chat_sender": f"sender-{n}", "chat_receiver": "lb", "chat_message": "hello",
            "chat_session": f"prop-chat-{n % 5}", "chat_source": "WENI",
            "message_id": f"prop-cm-{n}", "site": "lb", "location": "Nairobi",
            "counsellor": "c-1"}


#: Route → (path template, [(base body, the string fields to vary in it)]).
ROUTES = {
    "start": ("/v1/conversations", [
        (_start, RAPIDPRO + INPUT + INTAKE_RESULTS),
        (_explicit_start, ("conversation_id", "message_id", "site", "location", "risk", "text",
                           "attachments.0", "intake.narrative", "intake.sex"))]),
    "message": ("/v1/conversations/{cid}/messages", [
        (_message, RAPIDPRO + INPUT),
        (_explicit_message, ("message_id", "text", "attachments.0"))]),
    "close": ("/v1/conversations/{closing}/close", [
        (lambda n: {**_rapidpro(n), "reason": "resolved"}, ("reason",) + RAPIDPRO + INPUT)]),
    "ack": ("/v1/conversations/{cid}/acks", [
        (lambda n: {"message_id": "hl-1", "status": "read"}, ("message_id", "status"))]),
    "case": ("/v1/cases", [
        (_case, RAPIDPRO + INPUT + INTAKE_RESULTS),
        (_explicit_case, ("case_id", "conversation_id", "site", "location") + INTAKE)]),
    "compat_chat": ("/api/chat/", [
        (_chat, ("chat_sender", "chat_receiver", "chat_message", "chat_session", "chat_source",
                 "message_id", "site", "location", "counsellor"))]),
}


def _put(body: dict, path: str, value: str) -> dict:
    """``body`` with ``value`` at the dotted ``path`` (a number is a list index)."""
    body = copy.deepcopy(body)
    if path == RESULTS_KEY:
        body.setdefault("results", {})[value] = {"value": "x", "category": "All Responses"}
        return body
    *parents, last = path.split(".")
    node = body
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return body


@pytest.fixture
def app(app_factory):
    return app_factory(RATE_LIMIT_PER_MINUTE=0)  # hundreds of requests a minute


@pytest.fixture
def world(app, client):
    """A chatbot key, a compat account, a conversation with a counsellor message to send
    messages and acks to, and one to close."""
    key = make_client(app, "prop-weni", read_text=True)
    auth = {"Authorization": f"Token {key}"}
    for external_id in ("prop-live", "prop-closing"):
        started = client.post("/v1/conversations", headers=auth,
                              json={"site": "lb", "conversation_id": external_id})
        assert started.status_code == 201, started.json
    from tests.core.conftest import counsellor_message

    counsellor_message(app, "prop-live", message_id="hl-1")
    make_account(app, name="prop-compat", password="prop-pass", sites=["lb"])
    return {"auth": auth, "compat": login(client, "prop-compat", "prop-pass")}


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_no_string_in_any_body_field_gives_a_5xx(client, world, route):
    template, shapes = ROUTES[route]
    path = template.format(cid="prop-live", closing="prop-closing")
    headers = world["compat"] if route == "compat_chat" else world["auth"]
    fields = [(base, field) for base, names in shapes for field in names]
    counter = itertools.count()

    @given(choice=st.sampled_from(fields), value=TEXT)
    @settings(max_examples=100, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def one_field(choice, value):
        base, field = choice
        body = _put(base(next(counter)), field, value)
        response = client.post(path, data=json.dumps(body), headers=headers,
                               content_type="application/json")
        text = response.get_data(as_text=True)
        assert response.status_code < 500, (field, response.status_code, text[:300])
        if response.status_code >= 400:
            assert set(response.get_json()) == {"code", "message", "errors"}, text[:300]
        # What the server decodes: a high and a low surrogate side by side in the JSON
        # are one (storable) character to it.
        if UNSTORABLE.search(json.loads(json.dumps(value))):
            assert response.status_code in (400, 413), (field, response.status_code, text[:300])

    one_field()
