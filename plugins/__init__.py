"""Helpline plugins: the hook specifications, the public ``hookimpl`` marker, built-ins.

A plugin for a kind of helpline implements the hooks in :mod:`plugins.hookspecs`::

    from plugins import hookimpl

    @hookimpl
    def register_helpline_kinds():
        return [HelplineKind(name="mykind", config_schema=MyConfigSchema)]
"""

import pluggy

PROJECT = "helpline_adapter"
ENTRY_POINT_GROUP = "helpline_adapter.plugins"

hookimpl = pluggy.HookimplMarker(PROJECT)

__all__ = ["ENTRY_POINT_GROUP", "PROJECT", "hookimpl"]
