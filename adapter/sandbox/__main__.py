"""Command line: ``python -m adapter.sandbox helpline|rapidpro|mailroom --port N [options]``.

Settings come from the defaults, then ``--config FILE.json``, then environment
variables (for secrets, so they stay off the command line and out of ``ps``), then
flags. The server is werkzeug's threaded one: enough for tests, benchmarks and the
demo, and it stops cleanly on SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from flask import Flask
from werkzeug.serving import make_server

from adapter.sandbox.helpline import create_helpline_app
from adapter.sandbox.mailroom import create_mailroom_app
from adapter.sandbox.rapidpro import create_rapidpro_app

__all__ = ["create_helpline_app", "create_mailroom_app", "create_rapidpro_app", "main"]

#: Environment variable -> helpline config key.
HELPLINE_ENV = {
    "SANDBOX_HELPLINE_USERNAME": "username",
    "SANDBOX_HELPLINE_PASSWORD": "password",
    "SANDBOX_HELPLINE_CALLBACK_TOKEN": "callback_token",
    "SANDBOX_HELPLINE_CALLBACK_USERNAME": "callback_username",
    "SANDBOX_HELPLINE_CALLBACK_PASSWORD": "callback_password",
}
#: ``token=org,token2=org2``
RAPIDPRO_TOKENS_ENV = "SANDBOX_RAPIDPRO_TOKENS"
#: Environment variable -> mailroom (generic ticketer) config key.
MAILROOM_ENV = {
    "SANDBOX_MAILROOM_API_TOKEN": "api_token",
    "SANDBOX_MAILROOM_WEBHOOK_SECRET": "webhook_secret",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m adapter.sandbox",
        description="Run a sandbox peer (helpline, RapidPro or Weni mailroom) over real HTTP.",
    )
    sub = parser.add_subparsers(dest="kind", required=True)
    helpline = sub.add_parser("helpline", help="OpenCHS-compatible helpline simulator")
    _common_options(helpline)
    _helpline_options(helpline)
    rapidpro = sub.add_parser("rapidpro", help="RapidPro API v2 simulator")
    _common_options(rapidpro)
    _rapidpro_options(rapidpro)
    mailroom = sub.add_parser(
        "mailroom", help="Weni mailroom's generic ticketer side (for the weni-ticketer dialect)"
    )
    _common_options(mailroom)
    _mailroom_options(mailroom)
    return parser


def _common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    parser.add_argument("--port", type=int, required=True, help="port (0 picks a free one)")
    parser.add_argument("--config", metavar="FILE", help="JSON object of config settings")
    parser.add_argument(
        "--no-record-requests",
        dest="record_requests",
        action="store_false",
        default=None,
        help="do not keep every request (long benchmarks)",
    )
    parser.add_argument("--verbose", action="store_true", help="log each request")


def _helpline_options(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--base-path", help="API base path (default /helpline/api/)")
    add("--username", help="Basic-auth user (env SANDBOX_HELPLINE_USERNAME)")
    add("--password", help="Basic-auth password (env SANDBOX_HELPLINE_PASSWORD)")
    add("--token-ttl", type=float, help="session token lifetime, seconds (default 3600)")
    add("--expired-token-status", type=int, choices=(200, 401, 403),
        help="how an expired token is refused: 401 (default), 403, or 200 with errors")
    add(
        "--legacy-shape",
        action="store_true",
        default=None,
        help="answer case resources as lists of rows (older OpenCHS)",
    )
    add("--callback-url", help="the adapter's callback base for this site")
    add("--callback-token", help="fixed callback token (env SANDBOX_HELPLINE_CALLBACK_TOKEN)")
    add("--callback-username", help="login for the callback token call (env ..._CALLBACK_USERNAME)")
    add("--callback-password", help="password for it (env SANDBOX_HELPLINE_CALLBACK_PASSWORD)")
    add(
        "--minimal-callbacks",
        dest="callback_minimal",
        action="store_true",
        default=None,
        help="send replies as today's OpenCHS does: recipient, message_type, content only",
    )
    add("--hunting", action="store_true", default=None, help="simulate counsellors")
    add("--counsellor", dest="counsellors", action="append", help="pseudonym (repeatable)")
    add("--max-chats", type=int, help="chats one counsellor handles at once (default 5)")
    add("--auto-answer", type=float, help="probability a counsellor takes an offer (default 1)")
    add("--offer-timeout", type=float, help="seconds before an untaken offer times out (2)")
    add("--reply-delay", type=float, help="seconds before a counsellor replies (0.2)")
    add("--close-after", type=int, help="close the chat after this many replies")
    add("--send-acks", action="store_true", default=None, help="acknowledge client messages")
    add(
        "--dedupe-message-ids",
        action="store_true",
        default=None,
        help="store a repeated message_id once (real OpenCHS stores every POST)",
    )
    add("--seed", type=int, help="random seed for --auto-answer")


def _rapidpro_options(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add(
        "--token",
        dest="tokens",
        action="append",
        metavar="TOKEN[=ORG]",
        help=f"accepted API token (repeatable; env {RAPIDPRO_TOKENS_ENV}=tok=org,...)",
    )
    add("--rate-per-hour", type=float, help="requests per hour per org (default 3600)")
    add("--burst", type=float, help="bucket size (default: the hourly rate)")
    add(
        "--flow",
        dest="flows",
        action="append",
        metavar="UUID[=NAME]",
        help="a flow of the workspace (repeatable); a flow start naming another is refused",
    )


def _mailroom_options(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--base-url", help="the ticketer's base URL (where POST /v1/tickets goes)")
    add("--api-token", help="Bearer token sent to the ticketer (env SANDBOX_MAILROOM_API_TOKEN)")
    add(
        "--webhook-secret",
        help="HMAC secret of the callbacks (env SANDBOX_MAILROOM_WEBHOOK_SECRET)",
    )
    add(
        "--skip-webhook-hmac",
        action="store_true",
        default=None,
        help="accept unsigned callbacks (mailroom's skip_webhook_hmac; staging only)",
    )
    add("--ticketer-uuid", help="the ticketer's uuid in the callback URLs (lowercase)")
    add(
        "--topic",
        dest="topics",
        action="append",
        metavar="UUID[/QUEUE_UUID][=NAME]",
        help="a topic tickets may be opened with (repeatable; the first is the default)",
    )
    add("--project-uuid", help="metadata.project_uuid sent on open and history")
    add("--project-name", help="metadata.project_name sent on open and history")
    add("--domain", help="mailroom's domain: webhook_base_url becomes https://DOMAIN/mr/...")
    add("--history-mode", choices=("batch", "one_by_one"), help="default batch")
    add("--history-batch-size", type=int, help="messages per history batch (default 50)")
    add("--redact-urns", action="store_true", default=None, help="org redacts URNs")
    add("--retries", type=int, help="retries of a failed request (default 2, as mailroom)")
    add("--retry-backoff", type=float, help="first retry delay, seconds (default 5, doubles)")
    add("--timeout", type=float, help="request timeout, seconds (default 15)")


def helpline_config(args: argparse.Namespace, environ: Mapping[str, str]) -> dict[str, Any]:
    """Config for the helpline app from a file, the environment and flags."""
    config = _file_config(args.config)
    config.update({key: environ[var] for var, key in HELPLINE_ENV.items() if environ.get(var)})
    flags = (
        "base_path",
        "username",
        "password",
        "token_ttl",
        "expired_token_status",
        "legacy_shape",
        "callback_url",
        "callback_token",
        "callback_username",
        "callback_password",
        "callback_minimal",
        "hunting",
        "counsellors",
        "max_chats",
        "auto_answer",
        "offer_timeout",
        "reply_delay",
        "close_after",
        "send_acks",
        "dedupe_message_ids",
        "seed",
        "record_requests",
    )
    config.update(_given(args, flags))
    return config


def rapidpro_config(args: argparse.Namespace, environ: Mapping[str, str]) -> dict[str, Any]:
    """Config for the RapidPro app from a file, the environment and flags."""
    config = _file_config(args.config)
    env_tokens = [t for t in environ.get(RAPIDPRO_TOKENS_ENV, "").split(",") if t.strip()]
    if env_tokens or args.tokens:
        config["tokens"] = _pairs(env_tokens + (args.tokens or []), default="sandbox-org")
    if args.flows:
        config["flows"] = _pairs(args.flows, default="")
    config.update(_given(args, ("rate_per_hour", "burst", "record_requests")))
    return config


def mailroom_config(args: argparse.Namespace, environ: Mapping[str, str]) -> dict[str, Any]:
    """Config for the mailroom app from a file, the environment and flags."""
    config = _file_config(args.config)
    config.update({key: environ[var] for var, key in MAILROOM_ENV.items() if environ.get(var)})
    if args.topics:
        config["topics"] = _topics(args.topics)
    flags = (
        "base_url",
        "api_token",
        "webhook_secret",
        "skip_webhook_hmac",
        "ticketer_uuid",
        "project_uuid",
        "project_name",
        "domain",
        "history_mode",
        "history_batch_size",
        "redact_urns",
        "retries",
        "retry_backoff",
        "timeout",
        "record_requests",
    )
    config.update(_given(args, flags))
    return config


def _topics(items: Sequence[str]) -> dict[str, dict[str, str]]:
    """``["t1/q1=Counselling", "t2"]`` -> ``{"t1": {"name": ..., "queue_uuid": "q1"}, ...}``."""
    topics = {}
    for item in items:
        ids, _, name = item.strip().partition("=")
        topic, _, queue = ids.partition("/")
        topics[topic] = {"name": name, "queue_uuid": queue}
    return topics


def _file_config(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    try:
        with open(path, encoding="utf-8") as handle:
            loaded = json.load(handle)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"cannot read sandbox config {path}: {exc}") from exc
    if not isinstance(loaded, dict):
        raise SystemExit(f"{path}: expected a JSON object of settings")
    return loaded


def _given(args: argparse.Namespace, names: Sequence[str]) -> dict[str, Any]:
    """Only the flags actually given, so they do not mask file or env settings."""
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def _pairs(items: Sequence[str], default: str) -> dict[str, str]:
    """``["a=x", "b"]`` -> ``{"a": "x", "b": default}``."""
    pairs = {}
    for item in items:
        key, _, value = item.strip().partition("=")
        pairs[key] = value or default
    return pairs


FACTORIES: dict[str, tuple[Callable[[dict], Flask], Callable[..., dict]]] = {
    "helpline": (create_helpline_app, helpline_config),
    "rapidpro": (create_rapidpro_app, rapidpro_config),
    "mailroom": (create_mailroom_app, mailroom_config),
}


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    factory, configure = FACTORIES[args.kind]
    try:
        app = factory(configure(args, os.environ))
    except ValueError as exc:
        raise SystemExit(f"invalid sandbox config: {exc}") from exc
    server = make_server(args.host, args.port, app, threaded=True)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    base = app.extensions["sandbox"].config.get("base_path", "/")
    print(f"{args.kind} sandbox listening on http://{args.host}:{server.port}{base}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
