"""/metrics after real conversations, over real processes: gunicorn (two workers), a
delivery worker, the sandbox OpenCHS helpline and sandbox RapidPro, PostgreSQL and
Redis. Each family of the dashboard and the alert rules shows a non-zero value,
scraped with a monitor client's key made by the console command."""

from __future__ import annotations

import uuid

import pytest
import requests

from adapter.sandbox.stack import SITE, LocalStack
from tests.support import servers
from tests.support.metrics import assert_labels_fixed, names, samples
from tests.support.waiting import wait_until
from tests.test_monitoring_docs import used_metric_names

pytestmark = pytest.mark.integration

P = "helpline_adapter_"
ASSIGNMENT_TIMEOUT = 3
SETTINGS = {"RETRY_SCHEDULE": [0.2, 0.4, 0.6, 1, 1], "RETRY_JITTER": 0,
            "SWEEP_INTERVAL_SECONDS": 0.2, "DELIVERY_LEASE_SECONDS": 5, "LOG_LEVEL": "INFO",
            "ASSIGNMENT_TIMEOUT": ASSIGNMENT_TIMEOUT}

#: Family → the labels of the sample that must be non-zero (None: any sample of it).
NON_ZERO = {
    "messages_accepted_total": {"site": SITE, "direction": "to_helpline"},
    "deliveries_finished_total": {"site": SITE, "target": "helpline", "outcome": "done"},
    "delivery_retries_total": {"site": SITE, "target": "chatbot"},
    "dead_letters": {"site": SITE, "target": "helpline"},
    "message_delivery_latency_seconds_count": {"site": SITE, "direction": "to_client"},
    "conversation_wait_seconds_count": {"site": SITE},
    "backlog_deliveries": {"site": SITE, "target": "helpline"},
    "oldest_due_delivery_seconds": {"site": SITE},
    "conversations_waiting": {"site": SITE},
    "oldest_waiting_conversation_seconds": {"site": SITE},
    "no_counsellor_total": {"site": SITE},
    "no_counsellor_wait_seconds_count": {"site": SITE},
    "rapidpro_pacing_waits_total": {"site": SITE},
    "rapidpro_throttled_total": {"site": SITE},
    "cases_finished_total": {"site": SITE, "outcome": "created"},
    "site_assignment_timeout_seconds": {"site": SITE},
    "site_deliverable": {"site": SITE, "target": "chatbot"},
    "deliveries": {"site": SITE, "target": "chatbot", "status": "done"},
    "conversations": {"site": SITE, "state": "active"},
    "message_delivery_latency_seconds_sum": {"site": SITE, "direction": "to_helpline"},
    "metrics_redis_up": {},
}


@pytest.fixture
def stack(postgres_server, redis_url):
    with servers.own_database(postgres_server) as url, LocalStack(
            database_url=url, redis_url=redis_url, web_workers=2,
            settings=dict(SETTINGS)) as stack:
        yield stack


def start(stack, http, text: str) -> str:
    body = {"contact": {"uuid": str(uuid.uuid4()), "urn": "tel:+254700111222"},
            "flow": {"uuid": str(uuid.uuid4()), "name": "Escalate"},
            "results": {"location": {"value": "Nairobi", "category": "Nairobi"},
                        "message": {"value": text, "category": "All Responses"}}}
    answer = http.post(f"{stack.url}/v1/conversations", json=body, timeout=10)
    assert answer.status_code == 201, answer.text
    return answer.json()["id"]


def detail(stack, http, cid: str) -> dict:
    return http.get(f"{stack.url}/v1/conversations/{cid}", timeout=10).json()


def value(body: str, name: str, labels: dict) -> float:
    """The sample's value (0 when absent)."""
    return samples(body).get((P + name, frozenset(labels.items())), 0.0)


def test_every_family_counts_a_played_conversation(stack):
    http = stack.session()
    helpline, rapidpro = stack.helpline.client, stack.rapidpro.client
    key = stack.cli("clients", "create", "prometheus-e2e", "--role",
                    "monitor").stdout.strip().splitlines()[-1]

    def scrape() -> str:
        answer = requests.get(f"{stack.url}/metrics", timeout=10,
                              headers={"Authorization": f"Token {key}"})
        assert answer.status_code == 200, answer.text
        return answer.text

    # RapidPro throttles the first call we make to it, and says to wait 5 s.
    rapidpro.set_faults(throttle_next=1, retry_after=5)
    taken = start(stack, http, "the zebra words")
    left = start(stack, http, "nobody answers")
    wait_until(lambda: {taken, left} <= {s["session_id"] for s in helpline.sessions()},
               timeout=20, what="both conversations at the helpline")
    # A counsellor takes one: the "assigned" flow start is the call RapidPro throttles,
    # and the other's no_counsellor (after 3 s) then waits for our pacing of the org.
    helpline.counsellor("assign", session_id=taken, counsellor="counsellor-amani")
    wait_until(lambda: detail(stack, http, taken)["state"] == "active", what="assigned")
    wait_until(lambda: detail(stack, http, left)["no_counsellor_at"], timeout=20,
               what="no_counsellor")
    helpline.counsellor("reply", session_id=taken, text="I am here")
    wait_until(lambda: any(m["direction"] == "to_client" and m["status"] == "sent"
                           for m in detail(stack, http, taken)["messages"]),
               timeout=30, what="the counsellor's reply sent to RapidPro")
    wait_until(lambda: value(scrape(), "rapidpro_pacing_waits_total", {"site": SITE}),
               timeout=20, what="a pacing wait")

    # A case from the chatbot, created at the helpline.
    case = http.post(f"{stack.url}/v1/cases", timeout=10, json={
        "site": SITE, "contact": {"uuid": str(uuid.uuid4())},
        "results": {"location": {"value": "Nairobi", "category": "Nairobi"},
                    "category": {"value": "Abuse", "category": "Abuse"},
                    "narrative": {"value": "zebra narrative", "category": "All"}}})
    assert case.status_code == 202, case.text
    wait_until(lambda: http.get(f"{stack.url}/v1/cases/{case.json()['case_id']}",
                                timeout=10).json()["status"] == "created",
               timeout=30, what="case created")

    # The helpline refuses a message for good: a dead letter.
    helpline.set_faults(fail_status_permanent=400)
    refused = http.post(f"{stack.url}/v1/conversations/{left}/messages", timeout=10,
                        json={"message_id": "refused-1", "text": "refused words"})
    assert refused.status_code == 202
    wait_until(lambda: value(scrape(), "dead_letters", {"site": SITE, "target": "helpline"}),
               timeout=30, what="a dead letter")
    helpline.set_faults(fail_status_permanent=None)

    # The worker stops: a client message waits, due, in the backlog.
    for process in [p for p in stack.processes if p.name == "worker"]:
        process.close()
    assert http.post(f"{stack.url}/v1/conversations/{taken}/messages", timeout=10,
                     json={"message_id": "late-1", "text": "are you there"}).status_code == 202
    body = wait_until(
        lambda: (lambda b: b if value(b, "oldest_due_delivery_seconds", {"site": SITE}) > 0
                 else None)(scrape()), timeout=20, what="an overdue delivery")

    zero = {name: labels for name, labels in NON_ZERO.items()
            if not value(body, name, labels)}
    assert zero == {}, body
    # Every metric the alert rules and the dashboard use is in this real scrape...
    assert used_metric_names() - names(body) == set()
    # ... and what the child wrote, or who they are, is not; no label is an id.
    assert assert_labels_fixed(body, {SITE}) > 50
    for secret in ("zebra", "I am here", "254700111222", taken, left, "counsellor-amani"):
        assert secret not in body
