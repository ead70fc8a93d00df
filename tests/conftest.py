"""Fixtures: ``app`` (over SQLite and PostgreSQL), ``client``, ``runner``, ``api_key``.

Tests talk to real servers: Redis and PostgreSQL from ``TEST_REDIS_URL``/``REDIS_URL``
and ``TEST_DATABASE_URL``/``DATABASE_URL`` when set, else embedded ones started here.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy import text

from adapter import create_app
from adapter.auth import hash_secret, new_key
from adapter.extensions import db
from adapter.models import ApiClient
from tests.support import loopback_plugin, servers
from tests.support.sites import write_site


@pytest.fixture(scope="session")
def embedded_base(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("servers")


@pytest.fixture(scope="session")
def redis_url(embedded_base):
    url, server = servers.redis_url(embedded_base)
    yield url
    if server is not None:
        server.stop()


@pytest.fixture(scope="session")
def postgres_server(embedded_base):
    url, server = servers.postgres_server_url(embedded_base)
    yield url
    # An embedded server stops itself at exit (cleanup_mode "stop").


@pytest.fixture(scope="session")
def postgres_url(postgres_server):
    """A database of our own on the server, schema made by the Alembic migrations; the
    in-process tests share it (each empties it first). Process stacks have their own."""
    with servers.own_database(postgres_server) as url:
        migrate(url)
        yield url


def migrate(url: str) -> None:
    """Bring the database at ``url`` to the newest schema (the Alembic migrations)."""
    from adapter.database_upgrade import upgrade_database

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "COUNTRIES_DIR": _empty_dir(),
                      "LOG_LEVEL": "WARNING"})
    upgrade_database(app)
    with app.app_context():
        db.engine.dispose()


def _empty_dir() -> str:
    import tempfile

    return tempfile.mkdtemp(prefix="countries-")


@pytest.fixture
def countries_dir(tmp_path) -> Path:
    """A countries folder with one loopback site, ``lb`` (Nairobi, tel:+254)."""
    folder = tmp_path / "countries"
    write_site(
        folder, "lb", name="Loopback", plugin="loopback",
        routing={"locations": ["Nairobi", "Kenya"], "urn_prefixes": ["tel:+254"]},
        helpline={"url": "http://127.0.0.1:9/helpline"},
        rapidpro={"base_url": "http://127.0.0.1:9/", "token": "rp-token",
                  "flows": {"assigned": "flow-assigned", "closed": "flow-closed",
                            "no_counsellor": "flow-nobody", "delivered": "flow-delivered"}},
        policies={"assignment_timeout": 300},
    )
    write_site(folder, "ug", name="Loopback Uganda", plugin="loopback",
               routing={"locations": ["Kampala"], "urn_prefixes": ["tel:+256"]},
               helpline={"url": "http://127.0.0.1:9/helpline-ug"})
    return folder


@pytest.fixture(params=["sqlite", "postgresql"])
def db_backend(request) -> str:
    return request.param


@pytest.fixture
def app_factory(request, tmp_path, redis_url, countries_dir, db_backend):
    """Build apps on the chosen database, with fresh tables and a queue of their own."""
    made = []

    def make(countries: Path | None = None, plugins: tuple = (loopback_plugin,), **config):
        if db_backend == "postgresql":
            uri = request.getfixturevalue("postgres_url")
        else:
            uri = f"sqlite:///{tmp_path / 'adapter.sqlite3'}"
        settings = {
            "SQLALCHEMY_DATABASE_URI": uri,
            "REDIS_URL": redis_url,
            "COUNTRIES_DIR": str(countries or countries_dir),
            "DELIVERY_QUEUE": f"test-{uuid.uuid4().hex[:8]}",
            "SECRET_KEY": "test-secret",
            "TESTING": True,
            **config,
        }
        app = create_app(settings, plugins=plugins)
        with app.app_context():
            if db_backend == "postgresql":
                tables = ", ".join(t.name for t in db.metadata.sorted_tables)
                db.session.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
                db.session.commit()
            else:
                db.create_all()
        made.append(app)
        return app

    yield make
    for app in made:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def app(app_factory):
    return app_factory()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def make_client(app, name: str = "weni", role: str = "chatbot", sites=None,
                read_text: bool = False, namespace: str | None = None,
                reads_all: bool = False) -> str:
    key = new_key()
    with app.app_context():
        db.session.add(ApiClient(name=name, role=role, sites=sites, key_hash=hash_secret(key),
                                 can_read_text=read_text, namespace=namespace,
                                 reads_all=reads_all))
        db.session.commit()
    return key


@pytest.fixture
def api_key(app) -> str:
    return make_client(app)


@pytest.fixture
def auth(api_key) -> dict:
    return {"Authorization": f"Token {api_key}"}
