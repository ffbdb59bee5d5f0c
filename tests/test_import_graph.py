"""The package's import graph, read from the source with ``ast`` (every import statement, at module
level or inside a function; ``if TYPE_CHECKING:`` blocks, which never run, excepted):

* nothing under ``fastpixel/kernels`` imports a ``fastpixel`` module outside ``fastpixel.kernels``
  (the kernels are a leaf: the rest of fastpixel calls them, never the other way round);
* there is no import cycle among fastpixel's modules (a package's ``__init__`` counts as a module;
  the implicit import of a parent package does not).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _modules() -> dict[str, Path]:
    """Module name -> source file, for fastpixel/ (the kernels under their installed name)."""
    found = {}
    for base, prefix in ((ROOT / "fastpixel", "fastpixel"), (ROOT / "kernels", "fastpixel.kernels")):
        for path in base.rglob("*.py"):
            rel = path.relative_to(base)
            if rel.parts[0] == "kernels" and prefix == "fastpixel":
                continue  # the symlink to ../kernels: walked under its own name
            parts = [prefix, *rel.with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The fastpixel modules ``name`` imports."""
    is_package = path.name == "__init__.py"
    out: set[str] = set()

    def target(module: str) -> None:
        while module and module not in modules:  # "fastpixel.x.func" -> "fastpixel.x"
            module = module.rpartition(".")[0]
        if module and module != name:
            out.add(module)

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("fastpixel"):
                    target(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = name if is_package else name.rpartition(".")[0]
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                base = f"{package}.{node.module}" if node.module else package
            else:
                base = node.module or ""
            if base.startswith("fastpixel"):
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    target(sub if sub in modules else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), filename=str(path)))
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def test_the_kernels_import_nothing_of_fastpixel_outside_the_kernels():
    graph = _graph()
    outside = {name: sorted(m for m in deps if not m.startswith("fastpixel.kernels"))
               for name, deps in graph.items() if name.startswith("fastpixel.kernels")}
    assert {k: v for k, v in outside.items() if v} == {}


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = dfs(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = dfs(node)
            if found:
                return found
    return None


def test_no_import_cycle_in_the_package():
    assert _find_cycle(_graph()) is None


def test_the_cycle_finder_finds_a_cycle():
    """The check above can fail: a made-up graph with a cycle is caught, one without is not."""
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    graph = _graph()
    assert "fastpixel.ops.masked_conv" in graph["fastpixel.layers.masked_conv"]  # edges are really read
