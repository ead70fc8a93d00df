"""Bringing a database schema up to date (Alembic through Flask-Migrate)."""

from __future__ import annotations

from flask import Flask


def upgrade_database(app: Flask) -> None:
    from flask_migrate import upgrade

    with app.app_context():
        upgrade()
