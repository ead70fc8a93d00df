"""What a web or delivery worker loads: the migration tooling (Alembic, Mako, Pygments:
about 9 MB per process) stays out of both; the CLI still has ``db upgrade``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def probe(tmp_path: Path, code: str) -> str:
    """Run ``code`` in a fresh interpreter configured like a deployment; its last line."""
    countries = tmp_path / "countries"
    countries.mkdir()
    env = {**os.environ, "ADAPTER_DATABASE_URL": f"sqlite:///{tmp_path / 'probe.sqlite3'}",
           "ADAPTER_COUNTRIES_DIR": str(countries), "ADAPTER_SECRET_KEY": "footprint"}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60, check=True)
    return result.stdout.strip().splitlines()[-1]


def test_the_wsgi_app_does_not_load_the_migration_tooling(tmp_path):
    assert probe(tmp_path, "import sys, wsgi; print(sorted(m for m in "
                           "('alembic', 'flask_migrate', 'mako') if m in sys.modules))") == "[]"


def test_cli_commands_other_than_db_do_not_load_it_either(tmp_path):
    """The delivery worker is a CLI command: it must stay as light as the web worker."""
    assert probe(tmp_path, "import sys; from adapter.cli import main; "
                           "code = main(['sites', 'list']); "
                           "print(code, 'alembic' in sys.modules)") == "0 False"
