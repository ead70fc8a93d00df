"""Database setup: SQLite made safe for several processes, PostgreSQL as it is."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import event

from .extensions import db


def init_database(app: Flask) -> None:
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    if uri.startswith("sqlite"):
        options = dict(app.config["SQLALCHEMY_ENGINE_OPTIONS"])
        options.setdefault("connect_args", {"timeout": 15})
        options.pop("pool_pre_ping", None)
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = options
    db.init_app(app)
    if uri.startswith("sqlite"):
        with app.app_context():
            event.listen(db.engine, "connect", _sqlite_pragmas)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    """WAL lets the web and the worker share the file; FULL sync makes a commit durable."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()

