"""The package's import structure: no module import loops, and arrows that point down only.

Imports are read from the source (every ``import`` and ``from ... import`` of a ``kafkacompat``
module, including those under ``if TYPE_CHECKING:``), so a loop or an upward arrow fails here
before anyone has to find it by reading the code.
"""

from __future__ import annotations

import ast
from pathlib import Path

import kafkacompat

PACKAGE = Path(kafkacompat.__file__).parent

#: Packages that must never import these (not even for type checking).
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "protocol": ("broker", "server", "coordinators", "partitions", "cluster", "storage", "ops"),
    "storage": ("broker", "server", "coordinators", "partitions", "cluster", "ops"),
    "partitions": ("broker", "server", "coordinators", "cluster", "ops"),
    "coordinators": ("broker", "server", "cluster", "ops"),
    "cluster": ("broker", "server", "coordinators", "ops"),
    "security": ("broker", "server", "coordinators", "partitions", "cluster", "protocol", "ops"),
    "broker": ("server", "ops"),
    # Operations (metrics, health, console) read the broker from above; the server starts them.
    "ops": ("server",),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def kafkacompat_imports(path: Path) -> set[str]:
    """The kafkacompat modules ``path`` imports (a ``from X import name`` counts as X, or as
    X.name when that is a module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("kafkacompat"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if not node.module.startswith("kafkacompat"):
                continue
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                dotted = PACKAGE.parent / Path(*candidate.split("."))
                is_module = dotted.with_suffix(".py").exists() or (dotted / "__init__.py").exists()
                found.add(candidate if is_module else node.module)
    return found


def import_graph() -> dict[str, set[str]]:
    sources = [
        p for p in PACKAGE.rglob("*.py") if "messages" not in p.relative_to(PACKAGE).parts[:2]
    ]
    modules = {module_name(p): p for p in sources}
    return {
        name: {m for m in kafkacompat_imports(path) if m in modules and m != name}
        for name, path in modules.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
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

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 else None


def test_no_module_import_loops() -> None:
    assert cycles(import_graph()) == []


def test_lower_layers_never_import_upper_ones() -> None:
    upward = []
    for module, imports in import_graph().items():
        forbidden = FORBIDDEN.get(layer(module) or "", ())
        upward += [(module, m) for m in sorted(imports) if layer(m) in forbidden]
    assert upward == []


def test_the_checks_see_a_loop_and_an_upward_arrow() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    imports = kafkacompat_imports(PACKAGE / "broker" / "dispatch.py")
    assert "kafkacompat.broker.context" in imports
    assert layer("kafkacompat.storage.segment") == "storage"
    assert "server" in FORBIDDEN["broker"]
