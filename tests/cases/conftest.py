"""The whole system for case tests: :class:`adapter.sandbox.stack.LocalStack` (gunicorn,
a delivery worker, the sandbox helpline and RapidPro) on PostgreSQL and real Redis.

The stack's ``demo`` site maps sex, location and category to the sandbox helpline's own
category ids (``CASE_CATEGORIES``) and has ``case_created``/``case_failed`` flows.
"""

from __future__ import annotations

import pytest

from adapter.sandbox.stack import LocalStack
from tests.support import servers

#: Short timings, so a retry happens while a test watches.
SETTINGS = {
    "RETRY_SCHEDULE": [0.2, 0.4, 0.6, 1, 1],
    "RETRY_JITTER": 0,
    "SWEEP_INTERVAL_SECONDS": 0.2,
    "DELIVERY_LEASE_SECONDS": 5,
    "LOG_LEVEL": "INFO",
}


@pytest.fixture(scope="package")
def case_stack(postgres_server, redis_url):
    with servers.own_database(postgres_server) as url, LocalStack(
            database_url=url, redis_url=redis_url, web_workers=2,
            settings=dict(SETTINGS)) as stack:
        yield stack


@pytest.fixture
def stack(case_stack: LocalStack) -> LocalStack:
    case_stack.helpline.client.reset()
    case_stack.rapidpro.client.reset()
    return case_stack
