"""``helpline-adapter sandbox``: the simulated helpline, RapidPro and Weni mailroom, for tests."""

from __future__ import annotations

import sys

import click


@click.command("sandbox", context_settings={"ignore_unknown_options": True,
                                             "allow_extra_args": True,
                                             "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def sandbox(args: tuple[str, ...]) -> None:
    """Run a sandbox server: `sandbox helpline|rapidpro|mailroom --port N`.

    `helpline-adapter sandbox --help` lists the options of each.
    """
    from ..sandbox.__main__ import main as sandbox_main

    sys.exit(sandbox_main(list(args)))
