"""Liveness and readiness, without credentials."""

from __future__ import annotations

from flask import current_app
from flask.views import MethodView
from marshmallow import Schema, fields
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from adapter.api.blueprint import Blueprint

from ..extensions import db
from ..queueing import redis_for

blp = Blueprint("health", __name__, description="Health checks for load balancers")


class SandboxSchema(Schema):
    site = fields.String(metadata={"description": "The sandbox site's code"})
    helpline = fields.String(metadata={"description": "The sandbox helpline's URL"})
    rapidpro = fields.String(metadata={"description": "The sandbox RapidPro's URL"})


class HealthSchema(Schema):
    status = fields.String()
    checks = fields.Dict(keys=fields.String(), values=fields.String())
    sandbox = fields.Nested(SandboxSchema, metadata={
        "description": "Present only when `serve` runs a local sandbox site instead of the "
                       "countries folder: nothing reaches a real helpline or chatbot"})


@blp.route("/healthz")
class Liveness(MethodView):
    @blp.response(200, HealthSchema)
    def get(self):
        """The process is alive (and says when it serves a local sandbox site)."""
        answer = {"status": "ok", "checks": {}}
        if current_app.config.get("LOCAL_SANDBOX"):
            answer["sandbox"] = current_app.config["LOCAL_SANDBOX"]
        return answer


@blp.route("/readyz")
class Readiness(MethodView):
    @blp.response(200, HealthSchema)
    @blp.alt_response(503, schema=HealthSchema, description="The database or Redis is down")
    def get(self):
        """The database and Redis are reachable."""
        checks = {"database": "ok", "redis": "ok"}
        try:
            db.session.execute(text("SELECT 1"))
        except SQLAlchemyError:
            db.session.rollback()
            checks["database"] = "down"
        try:
            redis_for(current_app).ping()
        except RedisError:
            checks["redis"] = "down"
        ok = all(v == "ok" for v in checks.values())
        return {"status": "ok" if ok else "unavailable", "checks": checks}, (200 if ok else 503)
