"""Meta-tests: every hook is documented, implemented by a built-in or test plugin, and
called by some test (datasette's discipline: a hook nobody exercises rots)."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from plugins import hookspecs
from plugins.manager import DEFAULT_PLUGINS, make_plugin_manager
from tests.support import loopback_plugin, override_plugin

TESTS = Path(__file__).resolve().parents[1]
EXAMPLE = TESTS.parent / "docs/examples/helpline-adapter-example-plugin/src"

#: Hooks the core calls for every site, so a test that starts the app calls them.
CALLED_BY_THE_APP_FACTORY = {"register_helpline_kinds", "validate_site"}

SPECS = sorted(name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
               if hasattr(fn, "helpline_adapter_spec"))


def test_the_hooks_are_discovery_validation_and_overrides():
    assert SPECS == ["helpline_client", "helpline_events_from_callback",
                     "register_helpline_kinds", "validate_site"]


@pytest.mark.parametrize("name", SPECS)
def test_every_hookspec_has_a_docstring(name):
    doc = inspect.getdoc(getattr(hookspecs, name))
    assert doc and len(doc) > 20, f"{name} needs a docstring saying what it returns"


@pytest.mark.parametrize("name", SPECS)
def test_every_hookspec_is_implemented_by_a_builtin_or_test_plugin(name):
    pm = make_plugin_manager(extra_plugins=(loopback_plugin, override_plugin))
    implementers = {pm.get_name(impl.plugin) for impl in pm.hook.__dict__[name].get_hookimpls()}
    assert implementers, f"nobody implements {name}"
    ours = (loopback_plugin.__name__, override_plugin.__name__)
    assert implementers & set(DEFAULT_PLUGINS) or any(n in str(implementers) for n in ours)


def _test_sources() -> str:
    return "\n".join(path.read_text(encoding="utf-8") for path in TESTS.rglob("test_*.py")
                     if path.name != Path(__file__).name)


@pytest.mark.parametrize("name", SPECS)
def test_every_hookspec_is_called_in_some_test(name):
    """Directly (``pm.hook.<name>(``) or through the code that calls it in a test."""
    sources = _test_sources()
    direct = f"hook.{name}(" in sources
    through_app = name in CALLED_BY_THE_APP_FACTORY and "app_factory" in sources
    through_callbacks = (name == "helpline_events_from_callback"
                         and "/openchs/message/" in sources and "/webhook/events/" in sources)
    through_deliveries = name == "helpline_client" and "override_plugin" in sources
    assert direct or through_app or through_callbacks or through_deliveries, (
        f"no test calls {name}")
