"""The import graph of services/: no circles, and the three sides kept apart (the serving stages,
the client that runs on a learner's machine, the demo tooling). Every import counts, the ones
inside functions and under TYPE_CHECKING too: a lazy import is still a dependency a newcomer
has to follow."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import REPO

SERVICES = REPO / "services"
SERVING = ("services.asr", "services.alignment", "services.tajweed", "services.prosody", "services.gateway")
# What the client may use: the generated protos and the shared helpers.
CLIENT_ALLOWED = ("services.client", "services.common")


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in SERVICES.rglob("*.py") if "pb" not in p.relative_to(SERVICES).parts}


def _imported(name: str, path: Path, known: set[str]) -> Iterator[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            candidates = [module, *(f"{module}.{alias.name}" for alias in node.names)]
        else:
            continue
        for candidate in candidates:
            # `import a.b.c` depends on a.b.c; `from a.b import c` on a.b, or on a.b.c if a module.
            target = candidate
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                yield target


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: set(_imported(name, path, known)) - {"services"} for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the graph as a path (first == last), or None: iterative DFS with colours."""
    colour: dict[str, int] = {}
    for root in sorted(graph):
        if colour.get(root):
            continue
        stack: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(graph[root])))]
        path = [root]
        colour[root] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                colour[node] = 2
                stack.pop()
                path.pop()
                continue
            if colour.get(child) == 1:
                return [*path[path.index(child) :], child]
            if not colour.get(child):
                colour[child] = 1
                path.append(child)
                stack.append((child, iter(sorted(graph.get(child, ())))))
    return None


def _under(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def test_the_cycle_finder_finds_a_planted_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_circles_under_services() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


def test_serving_stages_import_neither_the_client_nor_the_demo_tooling() -> None:
    offending = sorted(
        f"{module} imports {target}"
        for module, targets in import_graph().items()
        if _under(module, SERVING)
        for target in targets
        if _under(target, ("services.client", "services.demo"))
    )
    assert not offending, "\n".join(offending)


def test_the_client_imports_no_server_module() -> None:
    graph = import_graph()
    client = [m for m in graph if _under(m, ("services.client",))]
    assert len(client) >= 5, client
    offending = sorted(
        f"{module} imports {target}"
        for module in client
        for target in graph[module]
        if not _under(target, CLIENT_ALLOWED)
    )
    assert not offending, "\n".join(offending)
