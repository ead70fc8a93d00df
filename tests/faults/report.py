"""Render the reliability table from a fault-suite run: ``python -m tests.faults.report [PATH]``.

Each fault test records one row (what was sent, accepted, arrived, lost, duplicated,
reordered, the calls in flight when the fault struck) into the JSON file named by
``RELIABILITY_REPORT`` (default: the pytest
run's temporary folder, printed at the end of the run). This turns it into markdown.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from datetime import date
from pathlib import Path

COLUMNS = [
    ("fault", "Fault"),
    ("path", "Path"),
    ("sent", "Sent"),
    ("accepted", "Accepted (2xx)"),
    ("arrived", "Arrived"),
    ("lost", "Lost"),
    ("duplicated", "Duplicated"),
    ("reordered", "Reordered"),
    ("late_copies", "Copies landing late"),
    ("in_flight", "In flight at the fault (bound on duplicates)"),
    ("answered_503", "503 + Retry-After"),
    ("connection_errors", "Connection errors"),
    ("seconds", "Seconds"),
]


def default_path() -> Path | None:
    value = os.environ.get("RELIABILITY_REPORT")
    return Path(value) if value else None


def load(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else []


def record(path: Path, row: dict) -> None:
    """Add (or replace, by fault name) one row."""
    rows = [r for r in load(path) if r["fault"] != row["fault"]]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([*rows, row], indent=1), encoding="utf-8")


def render(rows: list[dict]) -> str:
    header = "| " + " | ".join(title for _, title in COLUMNS) + " |"
    rule = "|" + "|".join(" --- " for _ in COLUMNS) + "|"
    lines = [header, rule]
    for row in rows:
        lines.append("| " + " | ".join(str(row.get(key, "")) for key, _ in COLUMNS) + " |")
    notes = [f"- **{row['fault']}**: {row['note']}" for row in rows if row.get("note")]
    return "\n".join(lines + ([""] + notes if notes else []))


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else default_path()
    if path is None:
        print("usage: python -m tests.faults.report PATH (or set RELIABILITY_REPORT)",
              file=sys.stderr)
        return 2
    rows = load(path)
    if not rows:
        print(f"no rows in {path}", file=sys.stderr)
        return 1
    print(f"Run of {date.today().isoformat()} on {platform.node()} "
          f"({platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()})")
    print()
    print(render(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
