"""The import structure of docs/architecture.md: lower rooms never import higher ones, and no module import
circles. Every ``import`` counts, at module level or inside a function (a lazy import is still a dependency)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "multibox"

LAYERS = (  # lowest first; a room imports itself and rooms of lower layers only, never a room beside it
    ("version", "errors", "viz"),  # the version, the errors a user can cause, drawing (Pillow only)
    ("checkpoint",),  # the checkpoint file format
    ("ops",),
    ("model", "data"),
    ("inference",),
    ("engine",),
    ("deploy",),
    ("serve",),
    ("cli",),
    ("__init__",),  # the package's front door: multibox.from_pretrained, imported on first use
)
ROOM_OF_FILE = {
    "cli_args": "cli",
    "cli_export": "cli",
    "cli_detect": "cli",
    "cli_benchmark": "cli",
    "cli_weights": "cli",
    "cli_data_show": "cli",
    "cli_data_anchors": "cli",
    "demo_ops": "cli",
    "__main__": "cli",
}
LAYER_OF_ROOM = {room: layer for layer, rooms in enumerate(LAYERS) for room in rooms}


def module_files() -> dict[str, Path]:
    """``{"multibox.deploy.export": path, ...}`` for every module of the package (a package is its __init__)."""
    modules = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = ("multibox", *path.relative_to(PACKAGE_DIR).with_suffix("").parts)
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def room(module: str) -> str:
    """The room of ``multibox.x.y``: its first part below the package (``x``); ``multibox`` itself is __init__."""
    top = module.split(".")[1] if "." in module else "__init__"
    return ROOM_OF_FILE.get(top, top)


def imported_modules(module: str, path: Path, known: set[str]) -> set[str]:
    """The multibox modules that ``module`` imports anywhere in its file; ``from a import b`` is ``a.b`` when
    that is a module, else ``a``."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against the importing module's package
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {name for name in found if name == "multibox" or name.startswith("multibox.")}


def import_graph() -> dict[str, set[str]]:
    files = module_files()
    known = set(files)
    return {module: imported_modules(module, path, known) - {module} for module, path in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            nxt = next((s for s in successors if s in graph), None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
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
    return found


def test_every_module_has_a_room():
    assert sorted({room(m) for m in module_files()} - set(LAYER_OF_ROOM)) == []


def test_lower_rooms_never_import_higher_ones():
    violations = [
        f"{module} ({room(module)}) imports {target} ({room(target)})"
        for module, targets in sorted(import_graph().items())
        for target in sorted(targets)
        if room(target) != room(module) and LAYER_OF_ROOM[room(target)] >= LAYER_OF_ROOM[room(module)]
    ]
    assert violations == []


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_cycle_finder_finds_a_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}}
    assert cycles(graph) == [["a", "b", "c"]]


MAX_FUNCTION_LINES = 80
KERNELS = ("ops",)  # the operators' fused kernels may run longer: they read as one computation


def long_functions(limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """``path:line name (N lines)`` for every function of the package over ``limit`` lines, kernels aside."""
    found = []
    for module, path in module_files().items():
        if room(module) in KERNELS:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > limit:
                    found.append(f"{path.relative_to(PACKAGE_DIR)}:{node.lineno} {node.name} ({lines} lines)")
    return found


def test_no_function_is_longer_than_a_screen():
    assert long_functions() == []


def test_the_length_check_sees_a_long_function():
    assert long_functions(limit=5) != []  # most functions are longer than five lines
