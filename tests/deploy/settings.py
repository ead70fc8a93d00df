"""The settings the code reads, derived from the code itself (no list kept by hand).

An environment variable is a setting when the code reads it:

- every ``ADAPTER_<KEY>`` for a key of :class:`adapter.config.DefaultConfig` (``load_config``
  fills ``app.config`` from ``ADAPTER_*`` with ``from_prefixed_env``);
- every ``ADAPTER_<KEY>`` for a key the code reads from a Flask config
  (``app.config["KEY"]``, ``current_app.config.get("KEY")``, ``config["KEY"]``), found in
  the source with :mod:`ast` (``SECRET_KEY`` is read but has no default);
- every variable read from ``os.environ`` / ``os.getenv`` by a literal name in the
  adapter, the plugins, ``gunicorn.conf.py`` and ``wsgi.py`` (found with :mod:`ast`);
- every variable ``load_config`` looks up at run time (recorded: the unprefixed
  ``DATABASE_URL``/``REDIS_URL`` and their prefixed forms are built with f-strings);
- every ``${VAR}`` the site files in ``countries/`` reference (``adapter.sites.ENV_REF``).

Not scanned: ``adapter/sandbox`` (the simulated helpline and RapidPro are separate Flask
apps with their own settings, for trials, never part of a deployment).
"""

from __future__ import annotations

import ast
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

from flask import Flask

ROOT = Path(__file__).resolve().parents[2]
SCANNED = [ROOT / "adapter", ROOT / "plugins", ROOT / "gunicorn.conf.py", ROOT / "wsgi.py"]
NOT_SCANNED = [ROOT / "adapter" / "sandbox"]
PREFIX = "ADAPTER_"


def _python_files() -> list[Path]:
    files: list[Path] = []
    for entry in SCANNED:
        files += [entry] if entry.is_file() else sorted(entry.rglob("*.py"))
    return [f for f in files if not any(f.is_relative_to(skip) for skip in NOT_SCANNED)]


def _literal(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _is_config(node: ast.AST) -> bool:
    """``something.config`` or a variable named ``config``."""
    return (isinstance(node, ast.Attribute) and node.attr == "config") or (
        isinstance(node, ast.Name) and node.id == "config")


def _is_environ(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "environ" and (
        isinstance(node.value, ast.Name) and node.value.id == "os")


@dataclass
class Scan:
    config_keys: dict[str, list[str]] = field(default_factory=dict)  # key -> where
    environ: dict[str, list[str]] = field(default_factory=dict)  # variable -> where
    # os.environ.get("X", default) in gunicorn.conf.py: the default, as a string
    environ_defaults: dict[str, str] = field(default_factory=dict)


def scan_source() -> Scan:
    scan = Scan()
    for path in _python_files():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        where = str(path.relative_to(ROOT))
        for node in ast.walk(tree):
            key = None
            if isinstance(node, ast.Subscript) and _is_config(node.value):
                key = _literal(node.slice)
                target = scan.config_keys
            elif isinstance(node, ast.Subscript) and _is_environ(node.value):
                key = _literal(node.slice)
                target = scan.environ
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and node.func.attr == "get" and node.args:
                key = _literal(node.args[0])
                if _is_config(node.func.value):
                    target = scan.config_keys
                elif _is_environ(node.func.value):
                    target = scan.environ
                    if key and len(node.args) > 1 and _literal(node.args[1]) is not None:
                        scan.environ_defaults[key] = _literal(node.args[1])
                else:
                    key = None
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and node.func.attr == "getenv" and node.args:
                key = _literal(node.args[0])
                target = scan.environ
            elif isinstance(node, ast.Compare) and len(node.ops) == 1 \
                    and isinstance(node.ops[0], ast.In | ast.NotIn) \
                    and _is_environ(node.comparators[0]):
                key = _literal(node.left)
                target = scan.environ
            if key and key.isupper():
                target.setdefault(key, []).append(f"{where}:{node.lineno}")
    return scan


class _RecordingEnviron(dict):
    """A stand-in for ``os.environ`` that notes every name looked up."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.looked_up: set[str] = set()

    def get(self, key, default=None):
        self.looked_up.add(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self.looked_up.add(key)
        return super().__getitem__(key)

    def __contains__(self, key):
        self.looked_up.add(key)
        return super().__contains__(key)


def looked_up_by_load_config(instance_path: Path) -> set[str]:
    """Run ``load_config`` on an empty environment and record what it looks up."""
    from adapter import config as config_module

    app = Flask("settings-probe", instance_path=str(instance_path))  # Flask's own lookups
    recording = _RecordingEnviron()
    with mock.patch.object(os, "environ", recording):
        config_module.load_config(app, None)
    return {name for name in recording.looked_up if isinstance(name, str)}


def default_config() -> dict[str, object]:
    from adapter.config import DefaultConfig

    return {k: v for k, v in vars(DefaultConfig).items() if k.isupper()}


def site_file_variables() -> dict[str, list[str]]:
    from adapter.sites import ENV_REF

    found: dict[str, list[str]] = {}
    for path in sorted((ROOT / "countries").glob("*.toml")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.lstrip().startswith("#"):
                continue
            for name in ENV_REF.findall(line):
                found.setdefault(name, []).append(f"countries/{path.name}:{number}")
    return found


@dataclass
class Settings:
    adapter: dict[str, str]  # ADAPTER_<KEY> -> why (DefaultConfig, or where it is read)
    environ: dict[str, str]  # other variables read directly -> where
    sites: dict[str, str]  # variables the shipped site files reference -> where

    @property
    def names(self) -> set[str]:
        return set(self.adapter) | set(self.environ) | set(self.sites)

    def why(self, name: str) -> str:
        return (self.adapter.get(name) or self.environ.get(name) or self.sites.get(name)
                or "not a setting")


def settings(instance_path: Path) -> Settings:
    scan = scan_source()
    adapter = {PREFIX + key: "adapter.config.DefaultConfig" for key in default_config()}
    for key, where in scan.config_keys.items():
        adapter.setdefault(PREFIX + key, "read at " + ", ".join(where))
    environ: dict[str, str] = {}
    for name, where in scan.environ.items():
        (adapter if name.startswith(PREFIX) else environ).setdefault(
            name, "os.environ at " + ", ".join(where))
    for name in looked_up_by_load_config(instance_path):
        (adapter if name.startswith(PREFIX) else environ).setdefault(
            name, "looked up by adapter.config.load_config")
    sites = {name: ", ".join(where) for name, where in site_file_variables().items()}
    return Settings(adapter=adapter, environ=environ, sites=sites)


def default_of(name: str) -> object:
    """What the code uses when ``name`` is unset, as JSON would load it (``...``: none known)."""
    defaults = default_config()
    key = name.removeprefix(PREFIX)
    if name.startswith(PREFIX) and key in defaults:
        return defaults[key]
    raw = scan_source().environ_defaults.get(name)
    if raw is None:
        return ...
    try:
        return json.loads(raw)
    except ValueError:
        return raw
