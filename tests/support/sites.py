"""Writing site files for a test."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def to_toml(data: dict, prefix: str = "") -> str:
    """Enough TOML for site files: scalars, lists, nested tables."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    out = "\n".join(lines) + "\n"
    for key, value in data.items():
        if isinstance(value, dict):
            name = f"{prefix}.{key}" if prefix else key
            out += f"\n[{name}]\n" + to_toml(value, name)
    return out


def write_site(folder: Path, code: str, **data: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{code}.toml"
    path.write_text(to_toml({"code": code, **data}), encoding="utf-8")
    return path
