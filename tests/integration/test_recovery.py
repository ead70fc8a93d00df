"""A helpline that comes back gets its backlog at once, not after each retry's backoff."""

from __future__ import annotations

import time

import pytest

from adapter.sandbox.stack import SITE, LocalStack
from tests.support import servers

CONVERSATIONS, MESSAGES = 4, 3


@pytest.fixture
def slow_backoff_stack(postgres_server, redis_url):
    """Retries back off to a minute after the first: only the probe can bring them back."""
    settings = {"RETRY_SCHEDULE": [0.2, 60, 60, 60], "RETRY_JITTER": 0,
                "PROBE_INTERVAL_SECONDS": 1, "SWEEP_INTERVAL_SECONDS": 0.2}
    with servers.own_database(postgres_server) as url, LocalStack(
            database_url=url, redis_url=redis_url, web_workers=1, settings=settings) as stack:
        yield stack


def test_backlog_drains_within_seconds_of_the_helpline_returning(slow_backoff_stack):
    stack = slow_backoff_stack
    http, helpline = stack.session(), stack.helpline.client
    helpline.set_faults(down=True)
    sent: dict[str, list[str]] = {}
    for c in range(CONVERSATIONS):
        cid = f"recovery-{c}"
        started = http.post(f"{stack.url}/v1/conversations", timeout=10, json={
            "conversation_id": cid, "site": SITE, "contact": {"uuid": f"contact-{c}"}})
        assert started.status_code == 201, started.text
        session = started.json()["id"]
        sent[session] = []
        for m in range(MESSAGES):
            accepted = http.post(f"{stack.url}/v1/conversations/{cid}/messages", timeout=10,
                                 json={"message_id": f"{cid}-{m}", "text": f"message {m}"})
            assert accepted.status_code == 202
            sent[session].append(accepted.json()["message_id"])
    # Wait until the first retries have failed too: the heads now back off for a minute.
    helpline.wait_for(lambda requests: len(requests) >= 2 * CONVERSATIONS, kind="requests",
                      timeout=30)

    helpline.set_faults(down=False)
    back = time.monotonic()
    helpline.wait_for(lambda messages: len(messages) >= CONVERSATIONS * MESSAGES,
                      kind="messages", timeout=15)
    drained_in = time.monotonic() - back

    arrived = helpline.records("messages")
    for session, ids in sent.items():
        assert [r["message_id"] for r in arrived if r["session_id"] == session] == ids
    assert len(arrived) == CONVERSATIONS * MESSAGES  # none twice
    assert drained_in < 10, f"backlog took {drained_in:.1f}s after the helpline returned"
