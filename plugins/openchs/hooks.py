"""What pluggy sees of the OpenCHS plugin: its kind and its callback routes."""

from __future__ import annotations

from plugins.api import hookimpl

from .kind import OPENCHS


@hookimpl(trylast=True)
def register_helpline_kinds():
    return [OPENCHS]


@hookimpl(trylast=True)
def register_site_routes():
    from .callbacks import blp

    return [(OPENCHS.name, blp)]
