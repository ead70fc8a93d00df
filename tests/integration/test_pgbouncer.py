"""Behind PgBouncer in transaction mode, as docs/deployment.md says to run it: psycopg's
server-side prepared statements off (``connect_args = {"prepare_threshold": null}``), the
migrations run past the pooler, two gunicorn workers and a delivery worker sharing a pool
of two server connections. Every message accepted is stored once and reaches the
helpline once, in order, and no request fails."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from adapter.sandbox.stack import SITE, LocalStack
from tests.conftest import migrate
from tests.support import servers
from tests.support.pgbouncer import pgbouncer, transactions_served
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

CONVERSATIONS, MESSAGES = 20, 10
SETTINGS = {
    "SQLALCHEMY_ENGINE_OPTIONS__connect_args": {"prepare_threshold": None},
    "SWEEP_INTERVAL_SECONDS": 0.2,
    "RETRY_JITTER": 0,
}


def test_transaction_pooling_with_prepared_statements_off_loses_nothing(postgres_server,
                                                                         redis_url):
    with servers.own_database(postgres_server) as direct:
        migrate(direct)  # past the pooler: DDL and long transactions go direct
        with pgbouncer(direct, pool_size=2) as pooled, LocalStack(
                database_url=pooled, redis_url=redis_url, web_workers=2,
                settings=dict(SETTINGS)) as stack:
            http = stack.session()

            def converse(c: int) -> list[int]:
                name = f"pooled-{c}"
                codes = [http.post(f"{stack.url}/v1/conversations", timeout=15, json={
                    "conversation_id": name, "site": SITE, "contact": {"uuid": f"c-pool-{c}"},
                    "text": f"{name}#0", "message_id": f"{name}-0"}).status_code]
                codes += [http.post(f"{stack.url}/v1/conversations/{name}/messages",
                                    timeout=15, json={"text": f"{name}#{n}",
                                                      "message_id": f"{name}-{n}"}).status_code
                          for n in range(1, MESSAGES)]
                return codes

            with ThreadPoolExecutor(8) as pool:
                codes = [code for answer in pool.map(converse, range(CONVERSATIONS))
                         for code in answer]
            helpline = stack.helpline.client
            expected = CONVERSATIONS * MESSAGES
            wait_until(lambda: len(helpline.records("messages")) >= expected, timeout=60,
                       what="every message at the helpline")

            assert sorted(set(codes)) == [201, 202], sorted(set(codes))
            arrived = helpline.records("messages")
            assert len(arrived) == expected  # once each: nothing lost, nothing twice
            by_session: dict[str, list[str]] = {}
            for message in sorted(arrived, key=lambda m: m["session_seq"]):
                by_session.setdefault(message["session_id"], []).append(message["message"])
            for texts in by_session.values():
                name = texts[0].split("#")[0]
                assert texts == [f"{name}#{n}" for n in range(MESSAGES)]
            # And it was PgBouncer that carried them: more transactions than messages.
            assert transactions_served(pooled) > expected
