"""Bringing a database schema up to date (Alembic through Flask-Migrate).

Flask-Migrate (and Alembic, Mako, Pygments behind it: about 9 MB) is set up only where
migrations are run, by the CLI and :func:`upgrade_database`, never in a web worker.
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def init_migrations(app: Flask) -> Flask:
    """Flask-Migrate on ``app`` (once), for ``helpline-adapter db ...`` and upgrades."""
    if "migrate" not in app.extensions:
        from flask_migrate import Migrate

        from .extensions import db

        Migrate(app, db, directory=str(MIGRATIONS), render_as_batch=True, compare_type=True)
    return app


def upgrade_database(app: Flask) -> None:
    from flask_migrate import upgrade

    init_migrations(app)
    with app.app_context():
        upgrade()
