"""No module of Shardmon imports itself back, however indirectly: the import graph of model/, shards/,
ingest/, querier/ and shardmon/ has no cycle. Every import counts, also one inside a function or under
``TYPE_CHECKING`` (a lazy import that dodges a cycle is still a cycle)."""

import ast
from pathlib import Path

from tests.unit.floors import module_name, sources


def _modules() -> dict[str, Path]:
    """Module name (``shardmon.model.config``) -> its file, for every hand-written module of the floors."""
    return {module_name(path): path for _, _, path in sources()}


def _graph(mods: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the modules of ours it imports (``from a import b`` imports ``a.b`` when that is a module)."""
    graph = {}
    for name, path in mods.items():
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
                names.update(f"{node.module}.{a.name}" for a in node.names)
        deps = set()
        for dep in names:
            while dep and dep not in mods:
                dep = dep.rpartition(".")[0]
            if dep and dep != name:
                deps.add(dep)
        graph[name] = deps
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            w = next(children, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                component = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    component.append(w)
                    if w == v:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_itself_back():
    mods = _modules()
    assert "shardmon.model.config" in mods and "shardmon.ingest.discovery" in mods
    cycles = _cycles(_graph(mods))
    assert not cycles, "modules that import each other (directly or not):\n" + "\n".join(", ".join(c) for c in cycles)
