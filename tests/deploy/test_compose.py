"""``deploy/compose.yaml``: PostgreSQL, Redis, a one-shot migrate, web and worker, wired
so that each waits for what it needs, with settings the code reads and no secret inline."""

from __future__ import annotations

import re
import runpy

import pytest
import yaml

from .conftest import COUNTRIES_DIR, DEPLOY, ROOT
from .settings import default_config, default_of

COMPOSE = DEPLOY / "compose.yaml"
APP_SERVICES = ("migrate", "web", "worker")
CREDENTIAL_IN_URL = re.compile(r"://[^/@\s]*:[^/@\s]+@")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return env


def seconds(duration: str) -> float:
    """Compose durations: 1m30s, 60s, 500ms."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", str(duration))
    assert parts and "".join(n + u for n, u in parts) == str(duration), duration
    return sum(float(n) * units[u] for n, u in parts)


def test_services(compose):
    assert set(compose["services"]) == {"postgres", "redis", *APP_SERVICES}


def test_app_services_share_one_image_built_from_the_dockerfile(compose):
    services = compose["services"]
    images = {services[name]["image"] for name in APP_SERVICES}
    assert len(images) == 1, images
    for name in APP_SERVICES:
        build = services[name]["build"]
        context = (COMPOSE.parent / build["context"]).resolve()
        assert context == ROOT
        assert (context / build["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
    for name in ("postgres", "redis"):
        assert "build" not in services[name]
        assert ":" in services[name]["image"], f"{name}: pin at least a major version"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_commands_exist(compose, name, commands):
    command = compose["services"][name]["command"]
    assert isinstance(command, list), "exec form: no shell between Docker and the process"
    commands.check(command)


def test_what_each_service_runs(compose):
    services = compose["services"]
    assert services["migrate"]["command"] == ["helpline-adapter", "db", "upgrade"]
    assert services["worker"]["command"] == ["helpline-adapter", "worker"]
    assert services["web"]["command"][0] == "gunicorn"
    assert services["migrate"]["restart"] == "no", "one-shot"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_every_variable_set_is_a_setting_the_code_reads(compose, name, code_settings):
    env = environment(compose["services"][name])
    unknown = sorted(set(env) - code_settings.names)
    assert not unknown, f"{name}: not settings the code reads: {unknown}"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_settings_come_from_the_env_file(compose, name):
    service = compose["services"][name]
    files = [f if isinstance(f, str) else f["path"] for f in service["env_file"]]
    assert files == ["helpline-adapter.env"]
    ignored = (DEPLOY / ".gitignore").read_text(encoding="utf-8").split()
    assert "helpline-adapter.env" in ignored, "the filled-in copy must not be committed"
    assert (DEPLOY / "helpline-adapter.env.example").exists()


def test_no_secret_inline(compose):
    for name, service in compose["services"].items():
        for key, value in environment(service).items():
            value = "" if value is None else str(value)
            assert not CREDENTIAL_IN_URL.search(value), f"{name}: {key} carries a password"
            if re.search(r"PASSWORD|SECRET|TOKEN|_KEY$", key) and not key.endswith("_FILE"):
                assert not value, f"{name}: {key} is set inline"
    postgres = compose["services"]["postgres"]
    assert environment(postgres)["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres_password"
    assert "postgres_password" in postgres["secrets"]
    secret_file = compose["secrets"]["postgres_password"]["file"]
    assert secret_file.startswith("./secrets/")
    assert "secrets/" in (DEPLOY / ".gitignore").read_text(encoding="utf-8").split()


def test_healthchecks(compose):
    services = compose["services"]
    for name in ("postgres", "redis", "web", "worker"):
        check = services[name]["healthcheck"]
        assert not check.get("disable"), name
        assert check["test"][0] == "CMD", f"{name}: exec form"
    assert services["migrate"]["healthcheck"] == {"disable": True}, \
        "the image's HTTP check means nothing for a one-shot"
    web = " ".join(services["web"]["healthcheck"]["test"])
    assert re.search(r"127\.0\.0\.1:8000/(healthz|readyz)", web), web
    worker = " ".join(services["worker"]["healthcheck"]["test"])
    assert "Worker.all" in worker and "adapter-" in worker


def test_worker_healthcheck_matches_the_worker_name():
    """The check looks for ``adapter-<hostname>-``: the name ``helpline-adapter worker``
    gives its RQ worker."""
    source = (ROOT / "adapter" / "cli" / "worker.py").read_text(encoding="utf-8")
    assert 'name = f"adapter-{socket.gethostname()}-{os.getpid()}"' in source


def test_start_order(compose):
    services = compose["services"]
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in ("web", "worker"):
        assert services[name]["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"},
            "postgres": {"condition": "service_healthy"},
            "redis": {"condition": "service_healthy"},
        }, name


def test_site_files_mounted_where_the_settings_say(compose):
    for name in APP_SERVICES:
        service = compose["services"][name]
        mounts = [v for v in service["volumes"] if v.split(":")[1] == COUNTRIES_DIR]
        assert len(mounts) == 1, f"{name}: the site folder at {COUNTRIES_DIR}"
        host, _, mode = mounts[0].split(":")
        assert mode == "ro"
        assert (COMPOSE.parent / host).resolve().is_dir()
        assert environment(service)["ADAPTER_COUNTRIES_DIR"] == COUNTRIES_DIR


def test_redis_url_names_the_redis_service(compose):
    for name in APP_SERVICES:
        url = environment(compose["services"][name])["ADAPTER_REDIS_URL"]
        assert url.startswith("redis://redis:6379/")


def test_graceful_stop_periods_match_the_code(compose):
    """web: longer than gunicorn's graceful_timeout; worker: longer than a batch in hand
    (the drain budget plus two rounds of HTTP timeouts)."""
    gunicorn = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    services = compose["services"]
    assert services["web"]["stop_signal"] == "SIGTERM"
    assert seconds(services["web"]["stop_grace_period"]) > gunicorn["graceful_timeout"]
    config = default_config()
    batch = config["DRAIN_BUDGET_SECONDS"] + 2 * (
        config["HTTP_CONNECT_TIMEOUT"] + config["HTTP_READ_TIMEOUT"])
    assert services["worker"]["stop_signal"] == "SIGTERM"
    assert seconds(services["worker"]["stop_grace_period"]) >= batch


def test_web_port_is_gunicorns_and_not_public(compose):
    port = default_of("ADAPTER_BIND").rsplit(":", 1)[1]  # gunicorn.conf.py's default
    assert compose["services"]["web"]["ports"] == [f"127.0.0.1:{port}:{port}"]


def test_app_services_are_locked_down(compose):
    """The app services run read-only, without capabilities: nothing to write but /tmp."""
    for name in APP_SERVICES:
        service = compose["services"][name]
        assert service["read_only"] is True
        assert service["cap_drop"] == ["ALL"]
        assert "no-new-privileges:true" in service["security_opt"]
        assert service["tmpfs"] == ["/tmp"]
