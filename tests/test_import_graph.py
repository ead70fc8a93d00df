"""No import cycle in ``adapter/`` or ``plugins/``: read from the source, every import
counted (at module level and inside functions alike, since a deferred import is still
a dependency; only ``if TYPE_CHECKING:`` blocks are left out)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("adapter", "plugins")
LEFT_OUT = ("adapter.migrations", "adapter.sandbox")  # run apart: not the service's graph


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The project modules ``path`` imports (a package's ``__init__`` counts as the package)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            for alias in node.names:  # `from . import protocol` names a module
                found.add(f"{base}.{alias.name}")
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return {target for target in found if target in modules and target != name}


def graph() -> dict[str, set[str]]:
    files = [p for package in PACKAGES for p in (ROOT / package).rglob("*.py")]
    modules = {module_name(p): p for p in files}
    kept = {name: path for name, path in modules.items() if not name.startswith(LEFT_OUT)}
    return {name: imports_of(path, set(kept)) for name, path in kept.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            connect(node)
    return found


def _parents_of(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    """A package's ``__init__`` importing its own submodules is how packages work, not
    a cycle: importing ``a.b`` runs ``a`` first, so ``a -> a.b`` edges are dropped."""
    return {name: {t for t in targets if not t.startswith(name + ".")}
            for name, targets in edges.items()}


def test_the_graph_sees_the_imports_it_must():
    edges = graph()
    assert "adapter.protocol" in edges["adapter.dialects.rapidpro_webhook.routes"]
    assert "adapter.models" in edges["adapter.protocol"]


def test_no_import_cycle_in_adapter_or_plugins():
    assert cycles(_parents_of(graph())) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


#: The plugin contract's one door into the core (docs/plugins.md).
FACADE = "plugins.api"


def test_plugins_reach_the_core_only_through_the_facade():
    """A plugin (built in or a country's) sees the core's names through ``plugins.api``
    alone: no plugin module imports ``adapter`` (its models, its database, its rules)."""
    files = [p for package in PACKAGES for p in (ROOT / package).rglob("*.py")]
    paths = {module_name(p): p for p in files}
    reaching_in = {}
    for name, path in paths.items():
        if name.startswith("plugins") and name != FACADE:
            into_core = sorted(t for t in imports_of(path, set(paths)) if t.startswith("adapter"))
            if into_core:
                reaching_in[name] = into_core
    assert reaching_in == {}


DIALECT_FOLDERS = ("rapidpro_webhook", "openchs_chat")
SHARED = "adapter.dialects.rapidpro_api"  # RapidPro's API, which two dialects call back


def test_the_protocol_and_the_delivery_engine_know_no_dialect():
    """The conversation protocol serves every dialect alike; only the dialect registry
    (adapter.dialects) is asked which outbound a conversation uses."""
    edges = graph()
    core = [name for name in edges if name.startswith(("adapter.protocol", "adapter.outbox",
                                                       "adapter.delivery", "adapter.models"))]
    for name in core:
        reached = {t for t in edges[name] if t.startswith("adapter.dialects.")}
        assert not reached, f"{name} imports {reached}"


def test_each_dialect_is_a_folder_that_imports_no_other_dialect():
    edges = graph()
    for folder in DIALECT_FOLDERS:
        own = f"adapter.dialects.{folder}"
        assert own in edges, f"{own} is not a package"
        for name, targets in edges.items():
            if name == own or name.startswith(own + "."):
                others = {t for t in targets if t.startswith("adapter.dialects.")
                          and not t.startswith((own, SHARED))}
                assert not others, f"{name} imports {others}"
