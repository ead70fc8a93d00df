"""What pluggy sees of the webhook plugin: its kind and its callback route."""

from __future__ import annotations

from plugins.api import hookimpl

from .kind import WEBHOOK


@hookimpl(trylast=True)
def register_helpline_kinds():
    return [WEBHOOK]


@hookimpl(trylast=True)
def register_site_routes():
    from .callbacks import blp

    return [(WEBHOOK.name, blp)]
