"""The whole system on one machine, as real processes: for the demo, tests and benchmarks.

A :class:`LocalStack` starts, on free loopback ports: an embedded Redis-compatible
server (unless a Redis URL is given), the sandbox helpline and sandbox RapidPro, a
countries folder with one OpenCHS site pointing at them, the database schema
(Alembic), an API client, gunicorn serving ``wsgi:app`` and delivery workers.

With ``mailroom=True`` it also starts the sandbox mailroom (Weni's generic-ticketer
side), its ``base_url`` the adapter and its API token the stack's client key; the site
gains a ``[chatbot.weni]`` table (topic :data:`WENI_TOPIC`, the webhook secret as
``${DEMO_WENI_WEBHOOK_SECRET}``), so tickets the mailroom opens reach the site.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from .control import RunningSandbox, start_sandbox
from .process import ManagedProcess, free_port

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

SITE = "demo"
RAPIDPRO_TOKEN = "sandbox-rapidpro-token"  # noqa: S105 - the sandbox's own
HELPLINE_USER, HELPLINE_PASSWORD = "adapter", "sandbox-helpline-password"
CALLBACK_USER, CALLBACK_PASSWORD = "openchs", "sandbox-callback-password"
FLOWS = {
    "assigned": "d3a10000-0000-4000-8000-000000000001",
    "delivered": "d3a10000-0000-4000-8000-000000000002",
    "closed": "d3a10000-0000-4000-8000-000000000003",
    "no_counsellor": "d3a10000-0000-4000-8000-000000000004",
    "case_created": "d3a10000-0000-4000-8000-000000000005",
    "case_failed": "d3a10000-0000-4000-8000-000000000006",
    "after_hours": "d3a10000-0000-4000-8000-000000000007",
}

#: The sandbox mailroom's topic (and queue), routed to the demo site by ``[chatbot.weni]``.
WENI_TOPIC = "a1d2b8c3-9e4f-4a5b-8c6d-7e8f9a0b1c2d"
WENI_QUEUE = "c4d5e6f7-8a9b-4c0d-9e2f-3a4b5c6d7e8f"
WENI_ASSIGNED_TEXT = "A counsellor has joined the chat."

#: The demo helpline's own category ids (``[helpline.case]``), as a site would configure.
CASE_CATEGORIES = {
    "default_category": "362557",
    "priority": 2,
    "sex": {"female": "121", "male": "120"},
    "location": {"nairobi": "258", "demo": "259"},
    "category": {"abuse": "362558", "neglect": "362559", "bullying": "362560"},
}


def _toml(value: Any) -> str:
    return json.dumps(value)  # JSON strings, numbers, lists and booleans are valid TOML


def write_demo_site(folder: Path, helpline_api: str, rapidpro_url: str,
                    assignment_timeout: int = 60, *, code: str = SITE,
                    name: str = "Demo helpline (sandbox)", weni: bool = False,
                    hours: str = "") -> Path:
    """One OpenCHS site file pointing at the sandboxes; its secrets are the ``DEMO_*``
    variables of :data:`SANDBOX_SECRETS`. ``hours``: the body of an ``[hours]`` table
    (TOML lines), none by default (always open)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{code}.toml"
    flows = "\n".join(f"{event} = {_toml(uuid_)}" for event, uuid_ in FLOWS.items())
    scalars = {k: v for k, v in CASE_CATEGORIES.items() if not isinstance(v, dict)}
    case = "\n".join(f"{key} = {_toml(value)}" for key, value in scalars.items())
    for table in ("sex", "location", "category"):
        case += f"\n[helpline.case.{table}]\n" + "\n".join(
            f"{key} = {_toml(value)}" for key, value in CASE_CATEGORIES[table].items())
    path.write_text(f"""\
code = "{code}"
name = {_toml(name)}
plugin = "openchs"

[routing]
locations = ["demo", "nairobi"]
urn_prefixes = ["tel:+254"]

[policies]
assignment_timeout = {assignment_timeout}

[helpline]
base_url = {_toml(helpline_api)}
username = "${{DEMO_HELPLINE_USER}}"
password = "${{DEMO_HELPLINE_PASSWORD}}"
callback_username = "${{DEMO_CALLBACK_USER}}"
callback_password = "${{DEMO_CALLBACK_PASSWORD}}"

[helpline.case]
{case}

[rapidpro]
base_url = {_toml(rapidpro_url)}
token = "${{DEMO_RAPIDPRO_TOKEN}}"
message_mode = "broadcasts"
rate_per_hour = 36000

[rapidpro.flows]
{flows}
""" + (f"""
[chatbot.weni]
topics = [{_toml(WENI_TOPIC)}]
queues = [{_toml(WENI_QUEUE)}]
webhook_secret = "${{DEMO_WENI_WEBHOOK_SECRET}}"
assigned_text = {_toml(WENI_ASSIGNED_TEXT)}
""" if weni else "") + (f"\n[hours]\n{hours}\n" if hours else ""), encoding="utf-8")
    return path


#: The values of the secrets a sandbox site file names (made up; the sandboxes' own).
SANDBOX_SECRETS = {
    "DEMO_HELPLINE_USER": HELPLINE_USER,
    "DEMO_HELPLINE_PASSWORD": HELPLINE_PASSWORD,
    "DEMO_CALLBACK_USER": CALLBACK_USER,
    "DEMO_CALLBACK_PASSWORD": CALLBACK_PASSWORD,
    "DEMO_RAPIDPRO_TOKEN": RAPIDPRO_TOKEN,
}


def site_flows(countries: Path) -> dict[str, str]:
    """Every flow uuid the site files of ``countries`` name (``[rapidpro.flows]``), with
    its event as the name."""
    import tomllib

    flows: dict[str, str] = {}
    for path in sorted(countries.glob("*.toml")):
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        for event, flow in ((data.get("rapidpro") or {}).get("flows") or {}).items():
            flows[str(flow)] = event
    return flows


@dataclass
class SandboxSite:
    """A sandbox helpline and a sandbox RapidPro, running, and a site file for them."""

    code: str
    helpline: RunningSandbox
    rapidpro: RunningSandbox
    path: Path  # the site file

    def stop(self) -> None:
        for sandbox in (self.helpline, self.rapidpro):
            sandbox.stop()


def start_sandbox_site(countries: Path, adapter_url: str, *, code: str = SITE,
                       name: str = "Demo helpline (sandbox)",
                       helpline_args: tuple[str, ...] = (),
                       assignment_timeout: int = 60, weni: bool = False,
                       hours: str = "") -> SandboxSite:
    """Start both sandboxes (the helpline calling back ``adapter_url``) and write the
    site file into ``countries``; the adapter needs :data:`SANDBOX_SECRETS` set."""
    helpline = start_sandbox(
        "helpline", "--callback-url", f"{adapter_url}/v1/sites/{code}/openchs/",
        *helpline_args,
        env={"SANDBOX_HELPLINE_USERNAME": HELPLINE_USER,
             "SANDBOX_HELPLINE_PASSWORD": HELPLINE_PASSWORD,
             "SANDBOX_HELPLINE_CALLBACK_USERNAME": CALLBACK_USER,
             "SANDBOX_HELPLINE_CALLBACK_PASSWORD": CALLBACK_PASSWORD})
    try:
        rapidpro = start_sandbox("rapidpro", "--token", f"{RAPIDPRO_TOKEN}=demo-org",
                                 *(f"--flow={uuid_}={event}" for event, uuid_ in FLOWS.items()))
    except BaseException:
        helpline.stop()
        raise
    path = write_demo_site(countries, helpline.api_url, rapidpro.url, assignment_timeout,
                           code=code, name=name, weni=weni, hours=hours)
    return SandboxSite(code, helpline, rapidpro, path)


@dataclass
class LocalStack:
    """Start with :meth:`start`, stop with :meth:`stop` (or use it as a context manager)."""

    database_url: str | None = None  # default: a SQLite file in the work folder
    redis_url: str | None = None  # default: an embedded Valkey server
    workers: int = 1
    web_workers: int = 2
    helpline_args: tuple[str, ...] = ()
    settings: dict[str, Any] = field(default_factory=dict)  # ADAPTER_* values
    extra_sites: dict[str, str] = field(default_factory=dict)  # file name → TOML text
    extra_env: dict[str, str] = field(default_factory=dict)  # e.g. the secrets they name
    mailroom: bool = False  # also the sandbox mailroom, and [chatbot.weni] on the site
    mailroom_args: tuple[str, ...] = ()
    hours: str = ""  # the demo site's [hours] table body (TOML lines); "": always open
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="adapter-")))

    def __post_init__(self) -> None:
        self.processes: list[ManagedProcess] = []
        self.sandboxes: list[RunningSandbox] = []
        self._redis_server = None
        self.url = ""
        self.key = ""
        self.mailroom_sandbox: RunningSandbox | None = None
        self.weni_secret = uuid.uuid4().hex
        self.env: dict[str, str] = {}

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> LocalStack:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        if not self.redis_url:
            from ..embedded import valkey_server_class

            server_class = valkey_server_class()
            self._redis_server = server_class(port=free_port(), data_dir=self.workdir / "valkey")
            self._redis_server.start()
            self.redis_url = self._redis_server.connection_url
        if not self.database_url:
            self.database_url = f"sqlite:///{self.workdir / 'adapter.sqlite3'}"
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        countries = self.workdir / "countries"
        peers = start_sandbox_site(countries, self.url, helpline_args=self.helpline_args,
                                   assignment_timeout=int(
                                       self.settings.pop("ASSIGNMENT_TIMEOUT", 60)),
                                   weni=self.mailroom, hours=self.hours)
        self.sandboxes += [peers.helpline, peers.rapidpro]
        self.helpline, self.rapidpro = peers.helpline, peers.rapidpro
        for name, text in self.extra_sites.items():
            (countries / name).write_text(
                text.replace("{rapidpro_url}", self.rapidpro.url), encoding="utf-8")
        # The workspace has the flows the sites name, as a configured one would.
        self.rapidpro.client.configure(flows=site_flows(countries))
        self.env = {
            **os.environ,
            "ADAPTER_DATABASE_URL": self.database_url,
            "ADAPTER_REDIS_URL": self.redis_url,
            "ADAPTER_COUNTRIES_DIR": str(countries),
            "ADAPTER_SECRET_KEY": uuid.uuid4().hex,
            "ADAPTER_DELIVERY_QUEUE": f"stack-{uuid.uuid4().hex[:8]}",
            **SANDBOX_SECRETS,
            "DEMO_WENI_WEBHOOK_SECRET": self.weni_secret,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT),
                                                        os.environ.get("PYTHONPATH")])),
            **{f"ADAPTER_{k}": v if isinstance(v, str) else json.dumps(v)
               for k, v in self.settings.items()},
            **self.extra_env,
        }
        self.cli("db", "upgrade")
        self.key = self.cli("clients", "create", f"demo-{uuid.uuid4().hex[:6]}",
                            "--read-text").stdout.strip().splitlines()[-1]
        web = ManagedProcess(
            [str(BIN / "gunicorn"), "-c", str(ROOT / "gunicorn.conf.py"),
             "-b", f"127.0.0.1:{port}", "-w", str(self.web_workers), "wsgi:app"],
            env=self.env, ready_url=f"{self.url}/healthz", name="gunicorn", cwd=ROOT)
        self.processes.append(web.start(timeout=60))
        for _ in range(self.workers):
            self.start_worker()
        if self.mailroom:
            self.mailroom_sandbox = start_sandbox(
                "mailroom", "--base-url", self.url,
                "--topic", f"{WENI_TOPIC}/{WENI_QUEUE}=Counselling", *self.mailroom_args,
                env={"SANDBOX_MAILROOM_API_TOKEN": self.key,
                     "SANDBOX_MAILROOM_WEBHOOK_SECRET": self.weni_secret})
            self.sandboxes.append(self.mailroom_sandbox)

    def start_worker(self) -> ManagedProcess:
        worker = ManagedProcess([str(BIN / "helpline-adapter"), "worker"], env=self.env,
                                name="worker", cwd=ROOT, ready_log="worker.started")
        self.processes.append(worker.start(timeout=60))
        return worker

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        result = subprocess.run([str(BIN / "helpline-adapter"), *args], cwd=ROOT, env=self.env,
                                capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"helpline-adapter {args[0]} failed: "
                               + (result.stderr.strip().splitlines() or ["?"])[-1])
        return result

    def session(self) -> requests.Session:
        http = requests.Session()
        http.headers["Authorization"] = f"Token {self.key}"
        return http

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.close()
        for sandbox in self.sandboxes:
            sandbox.stop()
        if self._redis_server is not None:
            self._redis_server.stop()
