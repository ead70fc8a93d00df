"""Build the plugin manager: built-ins listed here, third parties from an entry point."""

from __future__ import annotations

import importlib

import pluggy

from . import ENTRY_POINT_GROUP, PROJECT, hookspecs
from .types import HelplineKind

DEFAULT_PLUGINS = (
    "plugins.openchs",
    "plugins.webhook",
)


class PluginError(RuntimeError):
    """A plugin is broken or two plugins claim the same kind; raised at start-up."""


def make_plugin_manager(extra_plugins: tuple = ()) -> pluggy.PluginManager:
    """A fresh manager: built-ins, then entry-point plugins, then ``extra_plugins``."""
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    for name in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(name), name=name)
    pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    for plugin in extra_plugins:
        pm.register(plugin)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"plugin {exc.plugin!r} implements an unknown hook: {exc}") from exc
    return pm


def helpline_kinds(pm: pluggy.PluginManager) -> dict[str, HelplineKind]:
    """Every registered helpline kind by name; two plugins claiming one name is an error."""
    kinds: dict[str, HelplineKind] = {}
    for batch in pm.hook.register_helpline_kinds():
        for kind in batch or ():
            if kind.name in kinds:
                raise PluginError(f"helpline kind {kind.name!r} is registered twice")
            kinds[kind.name] = kind
    return kinds
