"""helpline-adapter: hands a chatbot conversation to a helpline counsellor and back."""

from __future__ import annotations

from flask import Flask

from plugins import hookimpl

__all__ = ["create_app", "hookimpl"]


def create_app(config: dict | None = None, *, plugins: tuple = ()) -> Flask:
    """Build the app: config, logging, database, plugins and sites, routes, CLI."""
    import os

    from plugins.manager import helpline_kinds, make_plugin_manager

    from . import api as api_package
    from .cases import check_settings as check_intake_settings
    from .cli import register_cli
    from .config import load_config
    from .console import init_console
    from .database import init_database
    from .errors import register_error_handlers
    from .logs import configure_logging
    from .requests_log import init_request_logging
    from .sites import load_sites
    from .state import EXTENSION, AdapterState

    # ADAPTER_INSTANCE_PATH moves the instance folder (SQLite file, secret key, the
    # embedded Redis's data); it is read before any config, since the config file is there.
    instance = os.environ.get("ADAPTER_INSTANCE_PATH")
    app = Flask(__name__, instance_relative_config=True,
                instance_path=os.path.abspath(instance) if instance else None)
    load_config(app, config)
    if int(app.config["PROXY_FIX_X_FOR"]) > 0:
        from werkzeug.middleware.proxy_fix import ProxyFix

        # The address only: the scheme is gunicorn's (forwarded_allow_ips), the path
        # prefix SCRIPT_NAME's.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=int(app.config["PROXY_FIX_X_FOR"]),
                                x_proto=0)
    configure_logging(app.config["LOG_LEVEL"], app.config["LOG_FORMAT"])

    pm = make_plugin_manager(plugins)
    kinds = helpline_kinds(pm)
    sites = load_sites(app.config["COUNTRIES_DIR"], kinds, app.config["RESULT_KEYS"])
    for site in sites:
        # Every table of the file, checked now: a mistake found at request time would
        # answer a child's escalation with 500.
        problems = list(kinds[site.plugin].check_config(dict(site.helpline)))
        problems += [p for batch in pm.hook.validate_site(site=site) for p in (batch or [])]
        problems += check_intake_settings(site)
        if problems:
            from .sites import SiteConfigError

            raise SiteConfigError(f"{site.source}: " + "; ".join(problems))
    from .dialects import chatbot_events

    app.extensions[EXTENSION] = AdapterState(pm=pm, kinds=kinds, sites=sites,
                                             chatbot_events=chatbot_events)

    init_database(app)
    register_error_handlers(app)
    init_request_logging(app)
    api_package.init_app(app)
    init_console(app)
    register_cli(app)
    return app

