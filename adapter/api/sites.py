"""Mounting each plugin's callback routes under ``/v1/sites/<site>/<kind>/``."""

from __future__ import annotations

from flask import Flask

from ..extensions import api
from ..state import state_of


def register_site_routes(app: Flask) -> None:
    pm = state_of(app).pm
    for batch in pm.hook.register_site_routes():
        for kind, blueprint in batch or ():
            api.register_blueprint(blueprint, url_prefix=f"/v1/sites/<site>/{kind}")
