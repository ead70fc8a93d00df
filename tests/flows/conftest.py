"""The RapidPro flow export in ``docs/flows/`` and the site config ``docs/rapidpro.md``
shows for it."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXPORT = ROOT / "docs" / "flows" / "helpline-adapter-flows.json"
GUIDE = ROOT / "docs" / "rapidpro.md"

#: The flow that answers each event the adapter sends to RapidPro.
EVENT_FLOWS = {
    "assigned": "Helpline: Counsellor Joined",
    "message": "Helpline: Counsellor Message",
    "no_counsellor": "Helpline: No Counsellor",
    "closed": "Helpline: Conversation Closed",
    "case_created": "Helpline: Case Created",
    "case_failed": "Helpline: Case Failed",
    "after_hours": "Helpline: After Hours",
}
ESCALATION = "Helpline: Escalate"
CHAT = "Helpline: Chat"


def load_export() -> dict:
    return json.loads(EXPORT.read_text(encoding="utf-8"))


def guide_site_config() -> dict:
    """The ``[rapidpro]`` table of the site file excerpt in docs/rapidpro.md."""
    blocks = re.findall(r"```toml\n(.*?)```", GUIDE.read_text(encoding="utf-8"), re.S)
    tables = [tomllib.loads(b) for b in blocks if "[rapidpro.flows]" in b]
    assert len(tables) == 1, "docs/rapidpro.md shows one site excerpt with [rapidpro.flows]"
    return tables[0]


@pytest.fixture
def export() -> dict:
    return load_export()


@pytest.fixture
def flows_by_name(export) -> dict[str, dict]:
    return {flow["name"]: flow for flow in export["flows"]}
