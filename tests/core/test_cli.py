"""The real ``helpline-adapter`` console script: help for every command, clear errors."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click
import pytest
from flask import has_app_context
from flask.cli import ScriptInfo

from adapter import create_app
from adapter.cli import _register_standalone, cli
from adapter.database_upgrade import init_migrations
from adapter.extensions import db
from adapter.models import Delivery, DeliveryStatus
from tests.conftest import make_client

from .conftest import default_body, start

SCRIPT = Path(sys.executable).parent / "helpline-adapter"
EXPECTED = {("clients", "create"), ("clients", "list"), ("clients", "revoke"),
            ("deliveries", "list"), ("deliveries", "show"), ("deliveries", "retry"),
            ("sites", "list"), ("sites", "check"), ("worker",), ("purge",), ("serve",),
            ("db", "upgrade"), ("sandbox",)}
# Groups other packages bring (Flask-Migrate, flask-smorest): their own help is theirs to
# test; we run the group's and the one subcommand operators are told to use.
THIRD_PARTY_GROUPS = {"db": {"upgrade"}, "openapi": set()}


@pytest.fixture
def env(tmp_path) -> dict:
    countries = tmp_path / "countries"
    countries.mkdir()
    return {**os.environ, "ADAPTER_COUNTRIES_DIR": str(countries),
            "ADAPTER_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite3'}",
            "ADAPTER_SECRET_KEY": "cli-test", "NO_COLOR": "1",
            # Each run starts a Python: let them share compiled modules (outside the tree).
            "PYTHONDONTWRITEBYTECODE": "", "PYTHONPYCACHEPREFIX": "/tmp/helpline-adapter-pycache"}


def command_paths(env: dict) -> list[tuple[str, ...]]:
    """Every command and subcommand, found by walking the click group with an app."""
    _register_standalone()
    settings = {"COUNTRIES_DIR": env["ADAPTER_COUNTRIES_DIR"],
                "SQLALCHEMY_DATABASE_URI": env["ADAPTER_DATABASE_URL"], "SECRET_KEY": "t"}
    info = ScriptInfo(create_app=lambda: init_migrations(create_app(settings)))  # as the CLI
    paths: list[tuple[str, ...]] = []

    def walk(group: click.Group, ctx: click.Context, prefix: tuple[str, ...]) -> None:
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            paths.append((*prefix, name))
            if isinstance(command, click.Group):
                with click.Context(command, parent=ctx, info_name=name) as sub:
                    walk(command, sub, (*prefix, name))

    # Closing the context pops the app context FlaskGroup pushed for the loaded app.
    with click.Context(cli, obj=info, info_name="helpline-adapter") as ctx:
        walk(cli, ctx, ())
    return paths


def run_all(argvs: list[list[str]], env: dict) -> list[subprocess.CompletedProcess]:
    """Run the console script once per argv, a few at a time: each starts a Python."""
    def run(argv: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run([str(SCRIPT), *argv], env=env, capture_output=True, text=True,
                              timeout=120)

    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(run, argvs))


def test_the_walk_finds_every_documented_command(env):
    assert set(command_paths(env)) >= EXPECTED
    assert not has_app_context()  # the walk leaves no app behind for later tests


def test_help_works_for_the_group_and_every_command(env):
    paths = [path for path in command_paths(env)
             if len(path) == 1 or path[0] not in THIRD_PARTY_GROUPS
             or path[1] in THIRD_PARTY_GROUPS[path[0]]]
    argvs = [["--help"]] + [[*path, "--help"] for path in paths]

    failures = [
        (result.args, result.returncode, result.stderr[-300:])
        for result in run_all(argvs, env)
        if result.returncode != 0 or "usage:" not in result.stdout.lower()
        or "Traceback" in result.stderr
    ]

    assert failures == []


def test_a_broken_site_file_is_one_clear_line_not_a_traceback(env):
    broken = Path(env["ADAPTER_COUNTRIES_DIR"]) / "ke.toml"
    broken.write_text('code = "ke"\nname = "Kenya\n', encoding="utf-8")

    [result] = run_all([["sites", "list"]], env)

    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {broken}: ")
    assert "Traceback" not in result.stderr


def test_a_site_file_with_a_bad_key_names_it(env):
    bad = Path(env["ADAPTER_COUNTRIES_DIR"]) / "ug.toml"
    bad.write_text('code = "ug"\nname = "Uganda"\nplugin = "webhook"\n[helpline]\n'
                   'url = "https://example.org"\n[policies]\nassignment_timeout = -5\n',
                   encoding="utf-8")

    [result] = run_all([["sites", "list"]], env)

    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert (result.returncode, len(lines)) == (2, 1), result.stderr
    assert lines[0].startswith(f"error: {bad}: ")
    assert "assignment_timeout" in lines[0]


def test_clients_create_through_the_console_script(env):
    [upgrade] = run_all([["db", "upgrade"]], env)
    assert upgrade.returncode == 0, upgrade.stderr

    [created] = run_all([["clients", "create", "weni", "--site", "ke"]], env)
    [listed] = run_all([["clients", "list"]], env)

    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("hla_")
    assert key not in created.stderr
    assert "weni" in listed.stdout and key not in listed.stdout + listed.stderr


def test_deliveries_retry_beside_an_embedded_redis_requeues_without_waking(app_factory):
    """Run in another shell than `serve`, the command has no REDIS_URL: the rows are
    requeued all the same (the relay finds them), not a traceback."""
    app = app_factory(REDIS_URL=None, RATE_LIMIT_PER_MINUTE=0)
    auth = {"Authorization": f"Token {make_client(app)}"}
    start(app.test_client(), auth, default_body(conversation_id="no-redis-retry"))
    with app.app_context():
        db.session.execute(db.update(Delivery).values(status=DeliveryStatus.FAILED))
        db.session.commit()

    result = app.test_cli_runner().invoke(args=["deliveries", "retry", "--all-failed"])

    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == "requeued 2 deliveries"
    with app.app_context():
        statuses = db.session.execute(db.select(Delivery.status)).scalars().all()
    assert statuses == [DeliveryStatus.PENDING] * 2
