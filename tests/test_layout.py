"""The house as `docs/ARCHITECTURE.md` lays it out: four product packages in one direction of dependence
(tasks → baselines → ahn → harness: each imports only its own package and those before it), no circle of imports
between modules, nothing of the product importing the benchmarks, studies, scripts or tests, `tasks` free of
torch, and a README a person reads in one sitting."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LAYERS = ("tasks", "baselines", "ahn", "harness")  # each may import the ones before it
OUTSIDE = ("bench", "studies", "scripts", "tests", "examples")
TOP_LEVEL = {"ahn", "baselines", "tasks", "harness", "leaderboards", "tests", "docs", "scripts", "bench", "studies",
             "examples"}


def _module(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module(p): p for layer in LAYERS for p in sorted((REPO / layer).rglob("*.py"))}


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(imported name, at module level) of every absolute import in the file; `from pkg import sub` names
    `pkg.sub`, so that importing a sibling through its package is not an edge to the package itself."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(node) for node in tree.body}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, id(node) in top) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out += [(f"{node.module}.{a.name}", id(node) in top) for a in node.names]
    return out


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for m, path in modules.items():
        for name, _ in _imports(path):
            target = _resolve(name, modules)
            if target and target != m and target not in LAYERS:  # a package's own __init__ re-exports
                graph[m].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_circle_of_imports_between_modules():
    assert _cycles(_graph()) == []


def test_the_checker_finds_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_every_import_follows_the_layers():
    modules = _modules()
    wrong = []
    for m, path in modules.items():
        layer = LAYERS.index(m.split(".")[0])
        for name, _ in _imports(path):
            root = name.split(".")[0]
            if root in LAYERS and LAYERS.index(root) > layer:
                wrong.append(f"{m} imports {name} ({root} comes after {LAYERS[layer]})")
            if root in OUTSIDE:
                wrong.append(f"{m} imports {name}, which is outside the product")
    assert wrong == []


def test_tasks_never_import_torch():
    """Scoring and task building run on any machine: `harness score` needs no torch."""
    users = [f"{m}: {name}" for m, path in _modules().items() if m.startswith("tasks")
             for name, _ in _imports(path) if name.split(".")[0] == "torch"]
    assert users == []


def test_the_top_level_is_the_documented_one():
    folders = {p.name for p in REPO.iterdir() if p.is_dir() and not p.name.startswith(".")}
    assert folders - {"runs", "build", "dist"} - {f for f in folders if f.endswith(".egg-info")} <= TOP_LEVEL
    assert set(LAYERS) <= folders


def test_the_readme_reads_in_one_sitting():
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 160, len(lines)
