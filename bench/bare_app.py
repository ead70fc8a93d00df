"""The ingest baseline: a Flask endpoint that parses the same JSON and answers 202.

Served by gunicorn with the adapter's own ``gunicorn.conf.py``
(``gunicorn -c gunicorn.conf.py bench.bare_app:app``), so the ratio of the two
ingest rates is what the adapter's work costs on top of Flask, gunicorn and HTTP.
"""

from __future__ import annotations

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.post("/v1/conversations/<conversation_id>/messages")
def accept(conversation_id: str):
    body = request.get_json()
    return jsonify(conversation_id=conversation_id, sender_message_id=body.get("message_id"),
                   status="accepted"), 202


@app.get("/healthz")
def healthz():
    return {"status": "ok"}
