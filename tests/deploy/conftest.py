"""Helpers of the deployment recipe's tests: the settings the code reads, and whether a
command line names a command that exists (by running it with ``--help``)."""

from __future__ import annotations

import functools
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .settings import ROOT, Settings, settings

DEPLOY = ROOT / "deploy"
ENV_TEMPLATE = DEPLOY / "helpline-adapter.env.example"
#: Where the recipe installs things (Dockerfile, systemd units, env template agree).
INSTALL_ROOT = "/opt/helpline-adapter"
VENV_BIN = f"{INSTALL_ROOT}/venv/bin"
COUNTRIES_DIR = "/etc/helpline-adapter/countries"
ENV_FILE = "/etc/helpline-adapter/helpline-adapter.env"


@pytest.fixture(scope="session")
def code_settings(tmp_path_factory) -> Settings:
    return settings(tmp_path_factory.mktemp("settings-probe"))


def _bin(name: str) -> str:
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    assert found, f"{name} is not installed beside {sys.executable}"
    return found


@functools.cache
def _probe_env(tmp: str) -> dict[str, str]:
    """A clean environment: nothing of the caller's deployment, nothing written to the
    checkout (a secret key and a SQLite file of the probe's own)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("ADAPTER_") and k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(ADAPTER_SECRET_KEY="deploy-test-probe",
               ADAPTER_DATABASE_URL=f"sqlite:///{tmp}/probe.sqlite3",
               ADAPTER_COUNTRIES_DIR=str(ROOT / "countries"),
               ADAPTER_LOG_LEVEL="ERROR")
    return env


def _run(argv: list[str], tmp: Path) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=ROOT, env=_probe_env(str(tmp)), capture_output=True,
                          text=True, timeout=120)


@functools.cache
def _cli_help(words: tuple[str, ...], tmp: str) -> tuple[int, str]:
    done = _run([_bin("helpline-adapter"), *words, "--help"], Path(tmp))
    return done.returncode, done.stdout + done.stderr


@functools.cache
def _gunicorn_check(args: tuple[str, ...], tmp: str) -> tuple[int, str]:
    done = _run([_bin("gunicorn"), *args, "--check-config"], Path(tmp))
    return done.returncode, done.stdout + done.stderr


class Commands:
    """Checks that a command line (of a unit, the Dockerfile, compose) runs something real."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp

    def cli_help(self, words: list[str]) -> tuple[int, str]:
        """``helpline-adapter WORDS --help``: exit status and output."""
        return _cli_help(tuple(words), str(self.tmp))

    def check(self, argv: list[str] | str) -> None:
        """The command exists: a ``helpline-adapter`` subcommand that answers ``--help``,
        or gunicorn with the project's config and WSGI module (``--check-config`` loads
        both, and the app)."""
        words = shlex.split(argv) if isinstance(argv, str) else list(argv)
        assert words, "an empty command"
        program, args = Path(words[0]).name, words[1:]
        if program == "helpline-adapter":
            subcommand = [w for w in args if not w.startswith("-")]
            assert subcommand, f"{words}: no subcommand"
            status, output = self.cli_help(subcommand)
            assert status == 0, f"`helpline-adapter {' '.join(subcommand)} --help` " \
                                f"exited {status}:\n{output[-2000:]}"
        elif program == "gunicorn":
            assert "-c" in args, f"{words}: gunicorn without the project's config (-c)"
            config = args[args.index("-c") + 1]
            assert Path(config).name == "gunicorn.conf.py", f"{words}: config {config}"
            apps = [a for a in args if ":" in a and not a.startswith("-")]
            assert apps == ["wsgi:app"], f"{words}: the app is wsgi:app (wsgi.py)"
            local = [str(ROOT / "gunicorn.conf.py") if a == config else a for a in args]
            status, output = _gunicorn_check(tuple(local), str(self.tmp))
            assert status == 0, f"gunicorn --check-config exited {status}:\n{output[-2000:]}"
        else:
            raise AssertionError(f"{words}: neither helpline-adapter nor gunicorn")


@pytest.fixture(scope="session")
def commands(tmp_path_factory) -> Commands:
    return Commands(tmp_path_factory.mktemp("commands"))
