"""``deploy/systemd/``: the web and worker units parse, run real commands, are hardened,
read the env file, restart, and stop gracefully within what the code needs."""

from __future__ import annotations

import configparser
import re
import runpy
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import DEPLOY, ENV_FILE, INSTALL_ROOT, ROOT, VENV_BIN
from .settings import default_config

SYSTEMD = DEPLOY / "systemd"
UNITS = {"web": SYSTEMD / "helpline-adapter-web.service",
         "worker": SYSTEMD / "helpline-adapter-worker.service"}
PURGE = SYSTEMD / "helpline-adapter-purge.service"
PURGE_TIMER = SYSTEMD / "helpline-adapter-purge.timer"
HARDENING = {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
             "PrivateTmp": "yes", "PrivateDevices": "yes", "RestrictSUIDSGID": "yes",
             "CapabilityBoundingSet": ""}


def parse_unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Sections of a unit file, each a list of (key, value): keys may repeat (systemd
    adds them up, e.g. SystemCallFilter=); a trailing backslash continues a line."""
    text = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        assert current is not None, f"{path.name}:{number}: a key outside a section"
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}:{number}: not key=value: {line}"
        current.append((key.strip(), value.strip()))
    return sections


def values(unit: dict, section: str, key: str) -> list[str]:
    return [v for k, v in unit.get(section, []) if k == key]


def one(unit: dict, section: str, key: str) -> str:
    found = values(unit, section, key)
    assert len(found) == 1, f"[{section}] {key}: {found}"
    return found[0]


@pytest.fixture(scope="module", params=sorted(UNITS))
def unit(request) -> tuple[str, dict]:
    return request.param, parse_unit(UNITS[request.param])


def test_configparser_reads_them_too():
    for path in sorted(SYSTEMD.iterdir()):
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        parser.optionxform = str  # systemd keys are case-sensitive
        parser.read_string(path.read_text(encoding="utf-8"), source=str(path))
        assert "Unit" in parser.sections()


def test_sections_and_keys(unit):
    _, parsed = unit
    assert {"Unit", "Service", "Install"} <= set(parsed)
    assert one(parsed, "Unit", "Description")
    assert "network-online.target" in one(parsed, "Unit", "After")
    assert one(parsed, "Install", "WantedBy") == "multi-user.target"
    assert one(parsed, "Service", "Type") in ("exec", "simple")
    assert one(parsed, "Service", "WorkingDirectory") == INSTALL_ROOT


def test_environment_from_the_env_file_only(unit):
    _, parsed = unit
    assert one(parsed, "Service", "EnvironmentFile") == ENV_FILE
    assert not values(parsed, "Service", "Environment"), "settings belong in the env file"


def test_runs_as_no_root(unit):
    _, parsed = unit
    dynamic = values(parsed, "Service", "DynamicUser") == ["yes"]
    user = values(parsed, "Service", "User")
    assert dynamic or (user and user[0] not in ("root", "0")), "a user of its own"


def test_hardening(unit):
    _, parsed = unit
    for key, expected in HARDENING.items():
        assert one(parsed, "Service", key) == expected, key
    filters = values(parsed, "Service", "SystemCallFilter")
    assert "@system-service" in filters
    families = one(parsed, "Service", "RestrictAddressFamilies").split()
    assert set(families) == {"AF_INET", "AF_INET6", "AF_UNIX"}


def test_restart_policy(unit):
    _, parsed = unit
    assert one(parsed, "Service", "Restart") in ("always", "on-failure")
    assert float(one(parsed, "Service", "RestartSec")) > 0


def test_exec_start_is_a_real_command(unit, commands):
    name, parsed = unit
    argv = shlex.split(one(parsed, "Service", "ExecStart"))
    assert argv[0].startswith(VENV_BIN + "/"), "the venv of the install"
    if name == "web":
        assert Path(argv[0]).name == "gunicorn"
        assert argv[argv.index("-c") + 1] == f"{INSTALL_ROOT}/gunicorn.conf.py"
    else:
        assert argv[1:] == ["worker"]
    commands.check(argv)


def test_graceful_stop_matches_the_code(unit):
    """SIGTERM to the main process (gunicorn's master; the worker, which stops RQ's
    scheduler itself), and time enough before SIGKILL."""
    name, parsed = unit
    assert one(parsed, "Service", "KillSignal") == "SIGTERM"
    assert one(parsed, "Service", "KillMode") == "mixed"
    stop = float(one(parsed, "Service", "TimeoutStopSec"))
    if name == "web":
        gunicorn = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
        assert stop > gunicorn["graceful_timeout"]
        assert one(parsed, "Service", "ExecReload") == "/bin/kill -HUP $MAINPID"
    else:
        config = default_config()
        batch = config["DRAIN_BUDGET_SECONDS"] + 2 * (
            config["HTTP_CONNECT_TIMEOUT"] + config["HTTP_READ_TIMEOUT"])
        assert stop >= batch


def test_the_worker_handles_sigterm():
    """What the units rely on: the worker's own SIGTERM handling."""
    source = (ROOT / "adapter" / "cli" / "worker.py").read_text(encoding="utf-8")
    assert "signal.signal(signal.SIGTERM" in source


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="no systemd-analyze here")
def test_systemd_analyze_verify(tmp_path):
    """systemd's own parser, with the install's venv pointed at this one (verify wants
    ExecStart's program to exist): no unknown keys, no bad values."""
    venv_bin = str(Path(sys.executable).parent)
    for path in SYSTEMD.iterdir():
        copy = tmp_path / path.name
        copy.write_text(path.read_text(encoding="utf-8").replace(VENV_BIN, venv_bin),
                        encoding="utf-8")
    done = subprocess.run(["systemd-analyze", "verify", *map(str, tmp_path.iterdir())],
                          capture_output=True, text=True, timeout=60)
    mine = [line for line in (done.stdout + done.stderr).splitlines()
            if str(tmp_path) in line]
    assert done.returncode == 0 and not mine, "\n".join(mine) or done.stderr


def test_purge_runs_daily_as_a_hardened_one_shot(commands):
    """Retention: ``helpline-adapter purge`` once a day, with the services' environment."""
    parsed = parse_unit(PURGE)
    assert one(parsed, "Service", "Type") == "oneshot"
    assert one(parsed, "Service", "EnvironmentFile") == ENV_FILE
    assert values(parsed, "Service", "DynamicUser") == ["yes"]
    for key, expected in HARDENING.items():
        assert one(parsed, "Service", key) == expected, key
    argv = shlex.split(one(parsed, "Service", "ExecStart"))
    assert argv == [f"{VENV_BIN}/helpline-adapter", "purge"]
    commands.check(argv)
    timer = parse_unit(PURGE_TIMER)
    assert one(timer, "Timer", "OnCalendar") == "daily"
    assert one(timer, "Timer", "Persistent") == "true"
    assert one(timer, "Install", "WantedBy") == "timers.target"
    assert PURGE_TIMER.with_suffix(".service").exists(), "the timer starts its namesake"
