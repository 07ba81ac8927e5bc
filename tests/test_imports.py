"""The shape of the tree outside tests/, read from the source. The import graph (every import, also those
inside functions): no cycles, and the library and the job domain never import the command line or the
service. Functions: none longer than MAX_FUNCTION_LINES (split one that grows, by what its parts do)."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("api", "bench", "esrgan", "jobs", "model", "training", "worker")
LOWER = ("model", "jobs")  # may import neither of UPPER
UPPER = ("esrgan", "api", "worker")
MAX_FUNCTION_LINES = 100


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(name: str, path: Path, node: ast.Import | ast.ImportFrom, modules: set[str]) -> list[str]:
    """The modules of this tree that ``node`` imports (``from pkg import sub`` names the submodule)."""
    if isinstance(node, ast.Import):
        targets = [alias.name for alias in node.names]
    else:
        package = name.split(".")
        if node.level:
            package = package if path.name == "__init__.py" else package[:-1]
            package = package[:len(package) - node.level + 1]
        base = ".".join([*package, node.module] if node.module else package) if node.level else node.module
        targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
    found = []
    for target in targets:
        while target not in modules and "." in target:
            target = target.rsplit(".", 1)[0]
        if target in modules and target != name:
            found.append(target)
    return found


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}
    graph = {}
    for name, path in files.items():
        nodes = [n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, (ast.Import, ast.ImportFrom))]
        graph[name] = {target for node in nodes for target in imported(name, path, node, set(files))}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_is_read():
    graph = import_graph()
    assert "esrgan.remote" in graph["esrgan.upscale"]  # an import inside a function counts
    assert "model.options" in graph["model.engine"] and "jobs.storage" in graph["jobs.backends"]
    assert "model.convert.checkpoint" in graph["model.convert.ncnn"]  # relative imports resolve


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_the_library_and_the_job_domain_import_no_command_line_or_service():
    upward = {name: sorted(t for t in targets if t.split(".")[0] in UPPER)
              for name, targets in import_graph().items() if name.split(".")[0] in LOWER}
    assert {name: targets for name, targets in upward.items() if targets} == {}


def test_a_cycle_and_an_upward_import_would_be_seen():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def function_lengths(source: str) -> dict[str, int]:
    """Lines of every function and method (``def`` line to last line, decorators left out), by qualified name."""
    lengths = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            name = prefix
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}."
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lengths[name[:-1]] = child.end_lineno - child.lineno + 1
            visit(child, name)

    visit(ast.parse(source), "")
    return lengths


def test_no_function_is_longer_than_the_limit():
    long = [f"{path.relative_to(ROOT)}: {name} ({lines} lines)"
            for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))
            for name, lines in function_lengths(path.read_text()).items() if lines > MAX_FUNCTION_LINES]
    assert long == []


def test_function_lengths_are_read_for_nested_functions_and_methods():
    source = "class A:\n    def f(self):\n        def g():\n            pass\n        return g\n\n\nasync def h():\n    pass\n"
    assert function_lengths(source) == {"A.f": 4, "A.f.g": 2, "h": 2}
