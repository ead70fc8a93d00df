"""Logs carry ids, never message text, names, URNs or keys — at any level, in any format."""

from __future__ import annotations

import logging

from adapter.logs import JsonFormatter, PlainFormatter
from tests.conftest import make_client

from .conftest import CONTACT_UUID, NAME, URN, counsellor_message

CHILD_TEXT = "my uncle hurts me when mama is away"
SECOND_TEXT = "he said not to tell anyone at school"
COUNSELLOR_TEXT = "you were brave to tell us, you are safe here"
ATTACHMENT = "https://media.example.org/private/bruise-photo.jpg"


def _conversation(app, client, auth) -> str:
    """A whole conversation, the unhappy paths included."""
    start = client.post("/v1/conversations", headers=auth, json={
        "contact": {"uuid": CONTACT_UUID, "name": NAME, "urn": URN},
        "flow": {"uuid": "f-1", "name": "Escalate"},
        "results": {"location": {"value": "Nairobi", "category": "Nairobi"},
                    "message": {"value": CHILD_TEXT, "category": "All"}},
        "input": {"uuid": "in-1", "urn": URN, "text": CHILD_TEXT,
                  "attachments": [f"image/jpeg:{ATTACHMENT}"]},
    })
    assert start.status_code == 201, start.json
    cid = start.json["conversation_id"]
    url = f"/v1/conversations/{cid}"
    assert client.post(f"{url}/messages", headers=auth,
                       json={"message_id": "m-2", "text": SECOND_TEXT}).status_code == 202
    assert client.post(f"{url}/messages", headers=auth,
                       json={"message_id": "m-2", "text": SECOND_TEXT}).status_code == 200
    reply = counsellor_message(app, cid, text=COUNSELLOR_TEXT)
    for status in ("delivered", "read"):
        assert client.post(f"{url}/acks", headers=auth,
                           json={"message_id": reply, "status": status}).status_code == 200
    reader_key = make_client(app, "reader", read_text=True, namespace="weni")
    reader = {"Authorization": f"Token {reader_key}"}
    assert client.get(f"{url}?include_text=true", headers=reader).status_code == 200
    # Refusals that quote what they were sent would leak it.
    assert client.post("/v1/conversations", headers=auth, json={
        "site": "lb", "conversation_id": f"{NAME} {URN}", "text": CHILD_TEXT}).status_code == 400
    assert client.post("/v1/conversations", headers=auth,
                       data=f'{{"text": "{CHILD_TEXT}", "contact": "{NAME}'
                       ).status_code in (400, 415)
    assert client.post("/v1/conversations", headers={"Authorization": f"Token {URN}"},
                       json={"text": CHILD_TEXT}).status_code == 401
    assert client.post(f"{url}/close", headers=auth).status_code == 200
    assert client.post(f"{url}/messages", headers=auth,
                       json={"message_id": "m-3", "text": SECOND_TEXT}).status_code == 409
    return cid


def test_nothing_sensitive_reaches_any_log_line(app_factory, caplog):
    app = app_factory(LOG_LEVEL="DEBUG")
    client = app.test_client()
    caplog.set_level(logging.DEBUG)
    api_key = make_client(app)
    auth = {"Authorization": f"Token {api_key}"}

    cid = _conversation(app, client, auth)
    created = app.test_cli_runner().invoke(args=["clients", "create", "rapidpro-ke"])
    assert created.exit_code == 0, (created.output, created.exception)
    cli_key = created.output.strip().splitlines()[-1]

    assert created.exit_code == 0 and cli_key.startswith("hla_")
    records = caplog.records
    events = {r.msg for r in records if r.name.startswith("adapter")}
    assert {"request", "message.accepted", "conversation.state"} <= events  # logs were caught
    assert any(getattr(r, "conversation_id", None) for r in records)

    secrets = [NAME, URN, URN.removeprefix("tel:"), CHILD_TEXT, SECOND_TEXT, COUNSELLOR_TEXT,
               ATTACHMENT, api_key, cli_key]
    formatters = [JsonFormatter(), PlainFormatter(), logging.Formatter(
        "%(name)s %(levelname)s %(message)s %(args)s")]
    leaks = []
    for record in records:
        lines = [f.format(record) for f in formatters]
        attributes = [repr(value) for value in vars(record).values()]
        for secret in secrets:
            for line in lines + attributes:
                if secret in line:
                    leaks.append((record.name, record.msg, secret))
    assert leaks == []
    assert cid  # the conversation id itself may be logged; it is ours to share


def test_an_unexpected_error_logs_its_type_not_its_message(app_factory, caplog):
    """A 500 is logged with the exception's type and frames, never its text."""
    app = app_factory(LOG_LEVEL="DEBUG")

    @app.get("/boom")
    def boom():
        raise RuntimeError(f"failed while handling {CHILD_TEXT} for {URN}")

    caplog.set_level(logging.DEBUG)
    response = app.test_client().get("/boom")

    assert response.status_code == 500
    assert CHILD_TEXT not in response.get_data(as_text=True)
    failures = [r for r in caplog.records if r.msg == "request.failed"]
    assert failures
    line = JsonFormatter().format(failures[0])
    assert "RuntimeError" in line
    assert CHILD_TEXT not in line and URN not in line
