"""The ``helpline-adapter`` console command: a Flask CLI group over ``create_app``."""

from __future__ import annotations

import sys

import click
from flask import Flask
from flask.cli import FlaskGroup

_invoked: list[str] = []  # the command line main() runs, to tell which command it is


def _create_app() -> Flask:
    from .. import create_app
    from ..database_upgrade import init_migrations

    app = create_app()
    return init_migrations(app) if _wants_migrations() else app


def _wants_migrations() -> bool:
    """Only ``db ...`` and the command listing need Flask-Migrate (about 9 MB of Alembic,
    Mako and Pygments); a delivery worker runs for weeks without it."""
    words = [word for word in _invoked if not word.startswith("-")]
    return not words or words[0] in ("db", "help")


@click.group(cls=FlaskGroup, create_app=_create_app, add_version_option=False,
             load_dotenv=False, set_debug_flag=False)
def cli() -> None:
    """helpline-adapter: hand chatbot conversations to a child helpline, and back."""


def register_cli(app: Flask) -> None:
    """Commands that need the app, registered by the modules that own them."""
    from . import clients, deliveries, maintenance, operators, sites, worker

    for module in (clients, deliveries, maintenance, operators, sites, worker):
        module.register(app)


def _register_standalone() -> None:
    from ..demo import demo
    from .sandbox import sandbox
    from .serve import serve

    cli.add_command(serve)
    cli.add_command(sandbox)
    cli.add_command(demo)


def main(argv: list[str] | None = None) -> int:
    """Entry point: configuration errors are one clear line, not a traceback."""
    from plugins.manager import PluginError

    from ..embedded import EmbeddedServerMissing
    from ..sites import SiteConfigError

    _register_standalone()
    _invoked[:] = argv if argv is not None else sys.argv[1:]
    try:
        cli.main(args=argv, prog_name="helpline-adapter", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.Abort:
        click.echo("aborted", err=True)
        return 1
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except (SiteConfigError, PluginError, EmbeddedServerMissing) as exc:
        click.echo(f"error: {exc}", err=True)
        return 2
    except Exception as exc:  # the last line of defence: one line, the type, no data
        import logging

        from ..logs import configure_logging

        configure_logging()  # the stack goes to the log as frames only, never values
        logging.getLogger("adapter.cli").exception("cli.failed")
        click.echo(f"error: {type(exc).__name__}: {_first_line(exc)}", err=True)
        return 1
    return 0


def _first_line(exc: Exception) -> str:
    """Our own errors carry a useful sentence; show its first line only."""
    text = str(exc).strip().splitlines()
    return text[0][:300] if text and type(exc).__module__.startswith("adapter") else "see the log"


if __name__ == "__main__":
    sys.exit(main())
