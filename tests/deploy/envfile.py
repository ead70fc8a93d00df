"""Reading ``deploy/helpline-adapter.env.example``: the names it sets or shows.

Only the subset of syntax that systemd's ``EnvironmentFile=`` and compose's ``env_file:``
read the same way is allowed: ``NAME=value`` alone on a line, the value either bare
(no whitespace, ``$``, quotes or backslashes) or wholly in single quotes. A commented
``# NAME=value`` shows a setting with the default the code uses.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

ASSIGNMENT = re.compile(r"^(?P<comment>#\s?)?(?P<name>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>.*)$")
BARE = re.compile(r"^[^\s$\"'\\`]*$")
QUOTED = re.compile(r"^'[^']*'$")


@dataclass(frozen=True)
class Entry:
    name: str
    raw: str  # as written
    active: bool  # not commented out
    line: int

    @property
    def value(self) -> str:
        """What a process gets (systemd and compose both drop the single quotes)."""
        return self.raw[1:-1] if QUOTED.match(self.raw) else self.raw

    @property
    def loaded(self) -> object:
        """As ``app.config.from_prefixed_env`` sees it: JSON where it parses."""
        try:
            return json.loads(self.value)
        except ValueError:
            return self.value

    @property
    def portable(self) -> bool:
        return bool(BARE.match(self.raw) or QUOTED.match(self.raw))


def parse(text: str) -> list[Entry]:
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        match = ASSIGNMENT.match(line)
        if match:
            entries.append(Entry(match["name"], match["value"], not match["comment"], number))
    return entries


def problems(entries: list[Entry], setting_names: set[str],
             dict_settings: set[str]) -> list[str]:
    """What is wrong between the template's names and the settings the code reads."""
    named = {e.name for e in entries}
    found = [f"{name}: read by the code, not in the template"
             for name in sorted(setting_names - named)]
    for entry in entries:
        base, nested, _ = entry.name.partition("__")
        if entry.name in setting_names:
            continue
        if nested and base in dict_settings:
            continue  # one key of a dict setting: from_prefixed_env's NAME__key
        found.append(f"line {entry.line}: {entry.name} is not a setting the code reads")
    seen: dict[str, int] = {}
    for entry in entries:
        if entry.name in seen:
            found.append(f"line {entry.line}: {entry.name} again (first on line "
                         f"{seen[entry.name]})")
        seen.setdefault(entry.name, entry.line)
    return found
