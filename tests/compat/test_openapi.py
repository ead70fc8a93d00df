"""The chat API is in the OpenAPI document, errors included."""

from __future__ import annotations


def test_every_compat_route_and_error_is_documented(client):
    spec = client.get("/openapi.json").json
    paths = spec["paths"]
    assert set(paths["/api/token/"]) == {"post"}
    assert set(paths["/api/chat/"]) == {"get", "post"}
    close = paths["/api/chat/{session}/close/"]["post"]
    assert {"200", "400", "401", "403", "404", "503"} <= set(close["responses"])
    send = paths["/api/chat/"]["post"]
    assert {"201", "400", "401", "403", "404", "409", "422", "503"} <= set(send["responses"])
    assert send["security"] == [{"Token": []}]
    body = spec["components"]["schemas"]["ChatIn"]
    assert {"chat_sender", "chat_message", "chat_session", "chat_source"} <= set(
        body["required"])
