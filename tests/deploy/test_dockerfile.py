"""``deploy/Dockerfile``: python:3.11-slim, the hashed production lock, the project
without its dependencies, bytecode, a non-root user, a health check, a real command.
Read, not built: the tests must not need a Docker daemon."""

from __future__ import annotations

import json
import re
import shlex

import pytest

from .conftest import COUNTRIES_DIR, DEPLOY, INSTALL_ROOT, ROOT

DOCKERFILE = DEPLOY / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    lines = [line for line in DOCKERFILE.read_text(encoding="utf-8").splitlines()
             if not line.lstrip().startswith("#")]
    text = re.sub(r"\\\n", " ", "\n".join(lines))
    found = []
    for line in text.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            found.append((word.upper(), " ".join(rest.split())))
    return found


def stages() -> list[list[tuple[str, str]]]:
    out: list[list[tuple[str, str]]] = []
    for word, rest in instructions():
        if word == "FROM":
            out.append([])
        if out:
            out[-1].append((word, rest))
    return out


def args() -> dict[str, str]:
    found = {}
    for word, rest in instructions():
        if word == "FROM":
            break
        if word == "ARG" and "=" in rest:
            name, _, value = rest.partition("=")
            found[name] = value
    return found


def exec_form(rest: str) -> list[str]:
    assert rest.startswith("["), f"exec form (JSON), not a shell: {rest}"
    return json.loads(rest)


def runs(stage) -> list[str]:
    return [rest for word, rest in stage if word == "RUN"]


def env_names(stage) -> set[str]:
    names = set()
    for word, rest in stage:
        if word == "ENV":
            names |= {part.split("=", 1)[0] for part in shlex.split(rest)}
    return names


def test_base_image_is_python_311_slim():
    for stage in stages():
        image = stage[0][1].split()[0]
        image = re.sub(r"\$\{(\w+)\}", lambda m: args()[m[1]], image)
        assert image == "python:3.11-slim", image


def test_installs_the_hashed_production_lock_then_the_project_without_deps():
    build = stages()[0]
    commands = runs(build)
    lock = [i for i, c in enumerate(commands) if "pip install" in c
            and "--require-hashes" in c and "-r requirements/production.txt" in c]
    assert lock, "pip install --require-hashes -r requirements/production.txt"
    project = [i for i, c in enumerate(commands)
               if "pip install" in c and "--no-deps" in c and "helpline_adapter" in c]
    assert project and project[0] > lock[0], "the project, --no-deps, after the lock"
    copied = [rest for word, rest in build if word == "COPY"]
    assert "requirements/production.txt requirements/production.txt" in copied
    assert not [c for c in copied if re.search(r"requirements/(local|test)\.txt", c)]
    everything = " ".join(commands)
    assert not re.search(r"pip install(?![^&]*(--require-hashes|--no-deps))", everything), \
        "every pip install is hashed or --no-deps"


def test_bytecode_is_compiled():
    assert any("compileall" in c for c in runs(stages()[0]))
    final = stages()[-1]
    assert "PYTHONDONTWRITEBYTECODE" in env_names(final)


def test_runs_as_a_user_of_its_own():
    final = stages()[-1]
    users = [rest for word, rest in final if word == "USER"]
    assert users, "no USER: it would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    assert any("useradd" in c and user in c for c in runs(final)), "the user is made here"


def test_healthcheck_asks_the_health_route():
    final = stages()[-1]
    checks = [rest for word, rest in final if word == "HEALTHCHECK"]
    assert len(checks) == 1
    assert re.search(r"CMD \[.*/(healthz|readyz)", checks[0]), checks[0]


def test_default_command_exists(commands):
    final = stages()[-1]
    cmd = [exec_form(rest) for word, rest in final if word == "CMD"]
    entrypoint = [exec_form(rest) for word, rest in final if word == "ENTRYPOINT"]
    argv = (entrypoint[-1] if entrypoint else []) + (cmd[-1] if cmd else [])
    assert argv, "no CMD or ENTRYPOINT"
    assert argv == ["gunicorn", "-c", f"{INSTALL_ROOT}/gunicorn.conf.py", "wsgi:app"]
    commands.check(argv)


@pytest.mark.parametrize("words", [["worker"], ["db", "upgrade"]])
def test_the_other_commands_of_the_image_exist(words, commands):
    """What the compose file and the header of the Dockerfile run with the same image."""
    commands.check(["helpline-adapter", *words])
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert f"helpline-adapter {' '.join(words)}" in text


def test_the_check_refuses_a_command_that_does_not_exist(commands):
    """There is no `helpline-adapter web`: the web is gunicorn with gunicorn.conf.py."""
    status, _ = commands.cli_help(["web"])
    assert status != 0
    with pytest.raises(AssertionError):
        commands.check(["helpline-adapter", "web"])


def test_env_sets_only_settings_the_code_reads(code_settings):
    final = stages()[-1]
    names = env_names(final)
    ours = {n for n in names if n.startswith("ADAPTER_")}
    assert ours <= code_settings.names, ours - code_settings.names
    assert names - ours <= {"PATH", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED"}
    assert f"ADAPTER_COUNTRIES_DIR={COUNTRIES_DIR}" in " ".join(
        rest for word, rest in final if word == "ENV")


def test_copied_files_exist_and_pass_the_dockerignore():
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert "*" in ignore, "an allow-list: nothing else of the checkout goes to the builder"
    for word, rest in instructions():
        if word != "COPY" or rest.startswith("--from"):
            continue
        *sources, _ = rest.split()
        for source in sources:
            assert (ROOT / source).exists(), source
            assert source.rstrip("/") in allowed, f"{source} is not in the dockerignore"


def test_the_web_port_and_stop_signal():
    final = stages()[-1]
    assert ("EXPOSE", "8000") in final
    assert ("STOPSIGNAL", "SIGTERM") in final
