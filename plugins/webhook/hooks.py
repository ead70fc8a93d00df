"""What pluggy sees of the webhook plugin: its kind (its callback included)."""

from __future__ import annotations

from plugins.api import hookimpl

from .kind import WEBHOOK


@hookimpl(trylast=True)
def register_helpline_kinds():
    return [WEBHOOK]
