"""A whole conversation with a `webhook` helpline, over real processes.

gunicorn, a delivery worker and the sandbox RapidPro run as processes; the helpline
is a small signed-webhook server in this test, standing for a non-OpenCHS helpline:
it verifies every request with the site's secret (Standard Webhooks) and calls back
signed with its own.
"""

from __future__ import annotations

import json
import threading
import uuid

import pytest
import requests
from standardwebhooks import Webhook
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from adapter.sandbox.process import free_port
from adapter.sandbox.stack import FLOWS, LocalStack
from plugins.webhook.signing import encode, signed_headers
from tests.support.waiting import wait_until

OUR_SECRET = "whsec_" + "c2VjcmV0LWZvci1vdXRib3VuZC1ldmVudHMtMTIzNA=="
THEIR_SECRET = "whsec_" + "Y2FsbGJhY2stc2VjcmV0LWZvci10aGUtaGVscGxpbmU="
CONTACT = "7c1a2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b"


class WebhookHelpline:
    """Receives our signed events, refusing any that do not verify."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        self.refused = 0
        self.port = free_port()
        self.server = make_server("127.0.0.1", self.port, self.app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def app(self, environ, start_response):
        request = Request(environ)
        body = request.get_data()
        try:
            Webhook(OUR_SECRET).verify(body, dict(request.headers))
        except Exception:  # noqa: BLE001 - any verification failure is a refusal
            self.refused += 1
            return Response("bad signature", status=401)(environ, start_response)
        self.events.append(json.loads(body))
        return Response("{}", status=200, mimetype="application/json")(environ,
                                                                         start_response)

    def of(self, event_type: str) -> list[dict]:
        return [e["data"] for e in self.events if e["type"] == event_type]


@pytest.fixture
def webhook_stack(postgres_server, redis_url):
    from tests.support import servers

    helpline = WebhookHelpline()
    helpline.thread.start()
    site = f"""\
code = "wh"
name = "A webhook helpline"
plugin = "webhook"
[routing]
locations = ["webhookland"]
[helpline]
url = "http://127.0.0.1:{helpline.port}/events"
secret = "${{WH_SECRET}}"
callback_secrets = ["${{WH_CALLBACK_SECRET}}"]
[rapidpro]
base_url = "{{rapidpro_url}}"
token = "${{DEMO_RAPIDPRO_TOKEN}}"
message_mode = "broadcasts"
[rapidpro.flows]
assigned = "{FLOWS['assigned']}"
closed = "{FLOWS['closed']}"
"""
    url, name = servers.create_database(postgres_server)
    stack = LocalStack(database_url=url, redis_url=redis_url, web_workers=1,
                       settings={"RETRY_SCHEDULE": [0.2, 0.5, 1], "SWEEP_INTERVAL_SECONDS": 0.2},
                       extra_sites={"wh.toml": site},
                       extra_env={"WH_SECRET": OUR_SECRET, "WH_CALLBACK_SECRET": THEIR_SECRET})
    with stack:
        yield stack, helpline
    helpline.server.shutdown()
    servers.drop_database(postgres_server, name)


def callback(stack: LocalStack, event_type: str, data: dict) -> requests.Response:
    body = encode({"type": event_type, "timestamp": "2026-11-23T00:00:00Z", "data": data})
    return requests.post(f"{stack.url}/v1/sites/wh/webhook/events/", data=body.encode(),
                         headers=signed_headers(THEIR_SECRET, f"cb_{uuid.uuid4().hex}", body),
                         timeout=10)


def test_a_whole_conversation_with_a_webhook_helpline(webhook_stack):
    stack, helpline = webhook_stack
    http, rapidpro = stack.session(), stack.rapidpro.client

    started = http.post(f"{stack.url}/v1/conversations", timeout=10, json={
        "contact": {"uuid": CONTACT, "name": "(not stored)", "urn": "tel:+999000"},
        "flow": {"uuid": "f0000000-0000-4000-8000-000000000001", "name": "Escalate"},
        "results": {"location": {"value": "Webhookland", "category": "All"},
                    "message": {"value": "please help", "category": "All"}}})
    assert started.status_code == 201, started.text
    session = started.json()["id"]
    conversation_id = started.json()["conversation_id"]
    wait_until(lambda: helpline.of("message.created"), what="the first message, signed")
    assert helpline.of("conversation.opened")[0]["session_id"] == session
    first = helpline.of("message.created")[0]
    assert first["text"] == "please help" and first["from"].startswith("client-")

    assert callback(stack, "conversation.assigned",
                    {"session_id": session, "counsellor": "counsellor-w"}).status_code < 300
    assert callback(stack, "message.created",
                    {"session_id": session, "message_id": "w-1", "text": "I am here",
                     "counsellor": "counsellor-w"}).status_code < 300
    broadcast = wait_until(lambda: rapidpro.records("broadcasts"), what="the reply at RapidPro")
    assert broadcast[0]["body"] == {"text": "counsellor-w: I am here", "contacts": [CONTACT]}
    assigned = [s["body"] for s in rapidpro.records("flow_starts")
                if s["body"]["flow"] == FLOWS["assigned"]]
    assert assigned and assigned[0]["params"]["conversation_id"] == conversation_id

    detail = http.get(f"{stack.url}/v1/conversations/{conversation_id}", timeout=10).json()
    reply = next(m for m in detail["messages"] if m["direction"] == "to_client")
    acked = http.post(f"{stack.url}/v1/conversations/{conversation_id}/acks", timeout=10,
                      json={"message_id": reply["message_id"], "status": "read"})
    assert acked.status_code == 200
    ack = wait_until(lambda: helpline.of("message.acknowledged"), what="the ack, signed")
    assert ack[0] == {"session_id": session, "message_id": "w-1", "status": "read"}

    assert callback(stack, "conversation.closed",
                    {"session_id": session, "reason": "resolved"}).status_code < 300
    closed = wait_until(lambda: [s["body"] for s in rapidpro.records("flow_starts")
                                 if s["body"]["flow"] == FLOWS["closed"]],
                        what="the closed event at RapidPro")
    assert closed[0]["params"]["closed_by"] == "counsellor"
    assert http.get(f"{stack.url}/v1/conversations/{conversation_id}",
                    timeout=10).json()["state"] == "closed"
    late = callback(stack, "message.created",
                    {"session_id": session, "message_id": "w-2", "text": "x"})
    forged_body = encode({"type": "message.created", "timestamp": "x", "data": {}})
    tampered = requests.post(f"{stack.url}/v1/sites/wh/webhook/events/",
                             data=forged_body.encode() + b" ", timeout=10,
                             headers=signed_headers(THEIR_SECRET, "cb_t", forged_body))
    assert late.status_code == 409  # a signed message to a closed conversation
    assert tampered.status_code == 401
    assert helpline.refused == 0  # every request we sent verified
