"""The database engine settings docs/deployment.md recommends reach psycopg when given
as the env template writes them: ``ADAPTER_SQLALCHEMY_ENGINE_OPTIONS__<option>`` sets one
option and keeps the others (Flask's ``from_prefixed_env``), and
``connect_args={"prepare_threshold": null}`` turns psycopg's server-side prepared
statements off (for PgBouncer in transaction mode). Over a real PostgreSQL connection, in
a process of its own (the option lands in a dict shared by the whole process)."""

from __future__ import annotations

import json
import subprocess
import sys

from . import envfile
from .conftest import ENV_TEMPLATE, ROOT, _probe_env

PROBE = """
import json
from adapter import create_app
from adapter.extensions import db
app = create_app()
with app.app_context():
    connection = db.engine.raw_connection()
    try:
        threshold = connection.driver_connection.prepare_threshold
    finally:
        connection.close()
    options = app.config["SQLALCHEMY_ENGINE_OPTIONS"]
    print(json.dumps({"prepare_threshold": threshold,
                      "pool_recycle": options.get("pool_recycle"),
                      "pool_size": db.engine.pool.size()}))
"""


def probe(database_url: str, tmp_path, **env: str) -> dict:
    environ = {**_probe_env(str(tmp_path)), "ADAPTER_DATABASE_URL": database_url, **env}
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=environ,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_prepared_statements_off_and_pool_size_from_the_environment(postgres_server,
                                                                     tmp_path):
    """The template's own lines, as systemd and compose hand them over."""
    template = {e.name: e for e in envfile.parse(ENV_TEMPLATE.read_text(encoding="utf-8"))}
    lines = {name: template[f"ADAPTER_SQLALCHEMY_ENGINE_OPTIONS__{name}"].value
             for name in ("connect_args", "pool_size")}
    assert lines["pool_size"] == "5", "the template shows SQLAlchemy's default"
    default = probe(postgres_server, tmp_path)
    assert default == {"prepare_threshold": 5, "pool_recycle": 1800, "pool_size": 5}
    tuned = probe(postgres_server, tmp_path,
                  ADAPTER_SQLALCHEMY_ENGINE_OPTIONS__connect_args=lines["connect_args"],
                  ADAPTER_SQLALCHEMY_ENGINE_OPTIONS__pool_size="3")
    assert tuned == {"prepare_threshold": None, "pool_recycle": 1800, "pool_size": 3}
