"""Configuration: defaults, then an instance file, then ``ADAPTER_*`` environment variables."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from flask import Flask

#: Seconds between attempts of one delivery, before jitter. In the spirit of Svix's
#: schedule, but the first retries come within seconds: a child is waiting.
DEFAULT_RETRY_SCHEDULE = [1, 5, 30, 120, 600, 1800, 7200, 18000, 36000, 36000]


class DefaultConfig:
    """Embedded defaults: a SQLite file and no Redis URL (the run command starts one)."""

    SQLALCHEMY_DATABASE_URI: str | None = None  # set from the instance path when unset
    # No pre-ping: it costs a round trip on every request (~12% of ingest). After a
    # database restart the first request of each process gets a 503 + Retry-After (never
    # a false 2xx) and SQLAlchemy replaces the whole pool; recycling bounds idle age.
    SQLALCHEMY_ENGINE_OPTIONS = {"hide_parameters": True, "pool_pre_ping": False,
                                 "pool_recycle": 1800}
    SQLALCHEMY_TRACK_MODIFICATIONS = False
    REDIS_URL: str | None = None
    MAX_CONTENT_LENGTH = 64 * 1024
    COUNTRIES_DIR: str | None = None  # default: the countries/ folder beside the project
    # Which RapidPro ``results`` keys hold what; a site may override them.
    RESULT_KEYS = {
        "conversation_id": ["conversation_id"],
        "text": ["message", "text"],
        "location": ["location"],
        "risk": ["risk"],
        "message_id": ["message_id"],
    }
    DELIVERY_QUEUE = "deliveries"
    RETRY_SCHEDULE = DEFAULT_RETRY_SCHEDULE
    RETRY_JITTER = 0.2
    DELIVERY_LEASE_SECONDS = 60
    DELIVERY_BATCH = 50
    DELIVERY_CONCURRENCY = 8  # calls in flight at once per worker (one per lane at most)
    DRAIN_BUDGET_SECONDS = 5.0
    SWEEP_INTERVAL_SECONDS = 1.0
    PROBE_INTERVAL_SECONDS = 5.0  # how often a failing site gets one early try
    HTTP_CONNECT_TIMEOUT = 3.05
    HTTP_READ_TIMEOUT = 10.0
    # The most a `still_waiting` pass waits for the helpline's queue positions (the
    # plugin's optional queue_position step); late or failed: the event goes with null.
    QUEUE_POSITION_TIMEOUT_SECONDS = 2.0
    RETRY_AFTER_SECONDS = 5  # what we tell a caller when a dependency is down
    RATE_LIMIT_PER_MINUTE = 1200  # per API client; 0 turns it off
    RATE_LIMIT_BURST = 200
    API_TOKEN_TTL_SECONDS = 24 * 3600  # OpenCHS-compatible tokens
    # Failed password logins (adapter.login_limits), per window; 0 turns a limit off.
    LOGIN_FAILURES_PER_ACCOUNT = 10
    LOGIN_FAILURES_PER_ADDRESS = 30
    LOGIN_WINDOW_SECONDS = 900
    # Proxies in front that append X-Forwarded-For: werkzeug's ProxyFix then makes the
    # client's address request.remote_addr (the login limits key on it). 0: no proxy.
    PROXY_FIX_X_FOR = 0
    # How long a process may remember who a credential belongs to; a revocation is
    # seen at once through Redis (adapter.callers), this bounds everything else. 0: off.
    CREDENTIAL_CACHE_SECONDS = 30
    CHAT_DEDUPE_WINDOW_SECONDS = 600
    # The operations console (/console, adapter/console): its session cookie (HttpOnly,
    # SameSite=Strict, for /console only: set by adapter/console, not settings) is Secure
    # (sent over HTTPS only) unless turned off for a plain-http run on another host
    # (ADAPTER_CONSOLE_COOKIE_SECURE=false; browsers take it over http://localhost even so).
    CONSOLE_COOKIE_SECURE = True
    CONSOLE_IDLE_TIMEOUT_SECONDS = 900  # a session unused this long is over
    CONSOLE_RECENT_HOURS = 24  # "recently closed" on the Waiting page
    LOG_LEVEL = "INFO"
    LOG_FORMAT = "json"  # or "text": one readable line per event, for a terminal
    # Set by `serve` when it runs a local sandbox site: {"site", "helpline", "rapidpro"}.
    LOCAL_SANDBOX: dict | None = None
    OPENAPI_VERSION = "3.0.3"
    OPENAPI_URL_PREFIX = "/"
    OPENAPI_JSON_PATH = "openapi.json"
    OPENAPI_SWAGGER_UI_PATH = "/docs"
    OPENAPI_SWAGGER_UI_URL = "docs/assets/"  # served by the adapter itself (api/docs_ui.py)
    API_TITLE = "helpline-adapter"
    API_VERSION = "v1"
    PROPAGATE_EXCEPTIONS = False


def _project_countries_dir() -> str:
    return str(Path(__file__).resolve().parent.parent / "countries")


def load_config(app: Flask, overrides: dict | None) -> None:
    """Fill ``app.config`` in order: defaults, instance ``adapter.cfg``, environment, overrides."""
    app.config.from_object(DefaultConfig)
    app.config.from_pyfile("adapter.cfg", silent=True)
    app.config.from_prefixed_env("ADAPTER")
    # The conventional unprefixed names, used when the prefixed ones are absent.
    for key, env in (("SQLALCHEMY_DATABASE_URI", "DATABASE_URL"), ("REDIS_URL", "REDIS_URL")):
        prefixed = os.environ.get(f"ADAPTER_{env}")
        if prefixed or os.environ.get(env):
            app.config[key] = prefixed or os.environ[env]
    if overrides:
        app.config.update(overrides)

    if not app.config.get("SQLALCHEMY_DATABASE_URI"):
        Path(app.instance_path).mkdir(parents=True, exist_ok=True)
        app.config["SQLALCHEMY_DATABASE_URI"] = (
            f"sqlite:///{Path(app.instance_path) / 'adapter.sqlite3'}"
        )
    app.config["SQLALCHEMY_DATABASE_URI"] = normalise_database_url(
        app.config["SQLALCHEMY_DATABASE_URI"]
    )
    if not app.config.get("COUNTRIES_DIR"):
        app.config["COUNTRIES_DIR"] = _project_countries_dir()
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _instance_secret(app)


def normalise_database_url(url: str) -> str:
    """Use psycopg 3 for ``postgres://`` and ``postgresql://`` URLs."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _instance_secret(app: Flask) -> str:
    """A per-installation secret kept in the instance folder, for development runs.

    Production sets ``ADAPTER_SECRET_KEY``; it keys client pseudonyms, so it must be
    the same for every process of a deployment, which a file in the instance folder is.
    """
    path = Path(app.instance_path) / "secret_key"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        key = secrets.token_urlsafe(32)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process won the race
            return path.read_text().strip()
        with os.fdopen(fd, "w") as fh:
            fh.write(key)
        return key
