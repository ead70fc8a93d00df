"""What pluggy sees of the OpenCHS plugin: its kind (callbacks included)."""

from __future__ import annotations

from plugins.api import hookimpl

from .kind import OPENCHS


@hookimpl(trylast=True)
def register_helpline_kinds():
    return [OPENCHS]
