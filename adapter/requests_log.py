"""One log line per request: method, route, status, duration, client — never a body."""

from __future__ import annotations

import logging
import time
import uuid

from flask import Flask, g, request

log = logging.getLogger("adapter.request")


def init_request_logging(app: Flask) -> None:
    @app.before_request
    def _start() -> None:
        g.started = time.monotonic()
        g.request_id = request.headers.get("X-Request-Id", "")[:64] or uuid.uuid4().hex

    @app.after_request
    def _finish(response):
        # Built only when it will be written: reading ``g.client.name`` after the
        # commit would reload the client row, a database round trip per request.
        if log.isEnabledFor(logging.INFO):
            log.info("request", extra={
                "request_id": g.get("request_id"),
                "method": request.method,
                "path": request.url_rule.rule if request.url_rule else "<unmatched>",
                "status": response.status_code,
                "duration_ms": round(
                    (time.monotonic() - g.get("started", time.monotonic())) * 1000, 1),
                "client": g.get("client_name"),
            })
        response.headers["X-Request-Id"] = g.get("request_id", "")
        return response
