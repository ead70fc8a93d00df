"""``deploy/helpline-adapter.env.example`` names every setting the code reads and nothing
else: the list comes from the code (``tests/deploy/settings.py``), so a setting added to
the code without a line here fails, and so does a line for a setting the code dropped."""

from __future__ import annotations

import pytest

from . import envfile
from .conftest import COUNTRIES_DIR, ENV_TEMPLATE
from .settings import default_config, default_of

SECRET_ENDINGS = ("PASSWORD", "SECRET", "TOKEN", "KEY", "DATABASE_URL", "DATABASE_URI",
                  "REDIS_URL")  # the URLs may carry a password


def entries() -> list[envfile.Entry]:
    return envfile.parse(ENV_TEMPLATE.read_text(encoding="utf-8"))


def dict_settings() -> set[str]:
    return {f"ADAPTER_{k}" for k, v in default_config().items() if isinstance(v, dict)}


def is_secret(name: str) -> bool:
    return name.endswith(SECRET_ENDINGS)


def test_the_settings_are_found_in_the_code(code_settings):
    """The derivation itself finds what we know is there (else the next test is empty)."""
    names = code_settings.names
    for known in ("ADAPTER_SECRET_KEY",  # read, without a default
                  "ADAPTER_DELIVERY_LEASE_SECONDS",  # a DefaultConfig key
                  "ADAPTER_WEB_WORKERS", "ADAPTER_BIND",  # gunicorn.conf.py's os.environ
                  "DATABASE_URL", "REDIS_URL",  # load_config's unprefixed names
                  "ADAPTER_DATABASE_URL",
                  "HELPLINE_ADAPTER_CLIENT_PASSWORD",  # clients create --password
                  "KE_OPENCHS_PASSWORD"):  # a ${VAR} of a site file
        assert known in names, f"{known} not found: {code_settings.why(known)}"
    assert not [n for n in names if n.startswith(("FLASK_", "PYTHON"))], "Flask's own"


def test_template_names_every_setting_and_nothing_else(code_settings):
    found = envfile.problems(entries(), code_settings.names, dict_settings())
    assert not found, "deploy/helpline-adapter.env.example:\n" + "\n".join(found)


def test_the_check_fails_when_a_setting_is_left_out(code_settings):
    """Remove any one line of the template: the comparison names that setting."""
    all_entries = entries()
    names, dicts = code_settings.names, dict_settings()
    before = set(envfile.problems(all_entries, names, dicts))
    for dropped in all_entries:
        if dropped.name not in names:
            continue
        rest = [e for e in all_entries if e is not dropped]
        found = set(envfile.problems(rest, names, dicts)) - before
        assert found == {f"{dropped.name}: read by the code, not in the template"}
    extra = envfile.Entry("ADAPTER_NO_SUCH_SETTING", "1", False, 999)
    assert set(envfile.problems([*all_entries, extra], names, dicts)) - before \
        == {"line 999: ADAPTER_NO_SUCH_SETTING is not a setting the code reads"}
    assert set(envfile.problems(all_entries, names | {"ADAPTER_NEW"}, dicts)) - before \
        == {"ADAPTER_NEW: read by the code, not in the template"}


def test_secrets_are_empty():
    assert is_secret("KE_OPENCHS_PASSWORD") and is_secret("ADAPTER_SECRET_KEY")
    assert not is_secret("ADAPTER_API_TOKEN_TTL_SECONDS")
    filled = [f"line {e.line}: {e.name}" for e in entries() if is_secret(e.name) and e.raw]
    assert not filled, "a secret with a value in the template: " + ", ".join(filled)


def test_every_line_reads_the_same_under_systemd_and_compose():
    bad = [f"line {e.line}: {e.name}={e.raw}" for e in entries() if not e.portable]
    assert not bad, "\n".join(bad)
    lines = ENV_TEMPLATE.read_text(encoding="utf-8").splitlines()
    others = [f"line {n}: {line}" for n, line in enumerate(lines, 1)
              if line.strip() and not line.startswith("#")
              and not envfile.ASSIGNMENT.match(line)]
    assert not others, "neither a comment nor NAME=value:\n" + "\n".join(others)


@pytest.mark.parametrize("entry", [e for e in entries() if not e.active and e.raw],
                         ids=lambda e: e.name)
def test_a_commented_value_is_the_default_the_code_uses(entry):
    """``# NAME=value`` documents the default: it must be the code's (as JSON loads it)."""
    default = default_of(entry.name)
    if default is ...:
        assert "__" in entry.name, f"{entry.name}: a value shown, but no default known"
        return
    assert entry.loaded == default, f"{entry.name}: template {entry.raw}, code {default!r}"


def test_active_lines_override_no_default_and_no_site_secret(code_settings):
    """An uncommented line is a value: only settings without a usable default are active
    (an empty ADAPTER_LOG_LEVEL would break logging; an empty site password would be
    sent), and none of the site files' variables (an unset one holds the site instead)."""
    active = [e for e in entries() if e.active]
    assert {e.name for e in active} == {"ADAPTER_DATABASE_URL", "ADAPTER_REDIS_URL",
                                        "ADAPTER_SECRET_KEY", "ADAPTER_COUNTRIES_DIR"}
    for entry in active:
        assert entry.name not in code_settings.sites
        assert default_of(entry.name) in (None, ...), f"{entry.name} has a default"
    countries = next(e for e in active if e.name == "ADAPTER_COUNTRIES_DIR")
    assert countries.value == COUNTRIES_DIR
