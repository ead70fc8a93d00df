"""Revocation across real processes: gunicorn's workers remember a key, ``clients revoke``
runs as its own process, and the key stops working in every worker (Redis pub/sub)."""

from __future__ import annotations

import pytest
import requests

pytestmark = pytest.mark.integration

ATTEMPTS = 12  # enough for both gunicorn workers to see the key, remember it, use it


def _statuses(stack, key: str) -> list[int]:
    """A message to a conversation that does not exist: 404 for a good key, 401 otherwise."""
    with requests.Session() as http:
        http.headers["Authorization"] = f"Token {key}"
        return [http.post(f"{stack.url}/v1/conversations/no-such/messages",
                          json={"message_id": f"m-{n}", "text": "hi"}, timeout=10).status_code
                for n in range(ATTEMPTS)]


def test_a_key_revoked_by_another_process_stops_working_in_every_web_worker(stack):
    key = stack.cli("clients", "create", "revoked-elsewhere").stdout.strip().splitlines()[-1]
    assert _statuses(stack, key) == [404] * ATTEMPTS  # known, so now remembered
    assert _statuses(stack, key) == [404] * ATTEMPTS

    result = stack.cli("clients", "revoke", "revoked-elsewhere")

    assert result.stdout.strip() == "revoked 'revoked-elsewhere'"
    stack.wait_for(lambda: _statuses(stack, key) == [401] * ATTEMPTS, timeout=3,
                   what="every web worker to refuse the revoked key")
    assert _statuses(stack, stack.key) == [404] * ATTEMPTS  # the others' keys still work
