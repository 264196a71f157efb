"""The package's shape: no import circle (module level or inside functions), and every public name importable."""

import ast
from pathlib import Path

import tiny_diffusion

PKG = Path(tiny_diffusion.__file__).parent


def module_name(path: Path) -> str:
    parts = ("tiny_diffusion",) + path.relative_to(PKG).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the tiny_diffusion modules it imports anywhere in its text (functions included)."""
    modules = {module_name(p): p for p in PKG.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                edges |= {a.name for a in node.names if a.name in modules}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([node.module] if node.module else []))
                if base not in modules:
                    continue
                subs = {f"{base}.{a.name}" for a in node.names} & set(modules)
                edges |= subs or {base}
                if len(subs) < len(node.names):  # names defined in the package's __init__ itself
                    edges.add(base)
        graph[name] = edges - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a list of modules (first == last), or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_finds_a_planted_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "d": {"a", "c"}}) is None


def test_no_import_circle():
    graph = import_graph()
    assert "tiny_diffusion.runs" in graph["tiny_diffusion.train.loop"]  # the walk sees module-level imports
    assert "tiny_diffusion.sampling" in graph["tiny_diffusion.cli.sample"]  # and those inside functions
    cycle = find_cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_every_public_name_imports():
    for name in tiny_diffusion.__all__:
        assert getattr(tiny_diffusion, name) is not None, name
