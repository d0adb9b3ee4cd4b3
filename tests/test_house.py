"""The shape of the code, checked from its source (``ast``; nothing is imported or run): imports
only run down the layers of ``LAYERS``, no import circle anywhere, and rooms stay small.

``LAYERS`` is the one table of who may import whom: a module may import modules of its own
layer or of any layer below it, never one above. docs/development.md ("Where things are")
draws the same map.
"""

import ast
import functools
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "durable_ingest"

# Top to bottom. A name ending in ".*" is every module of that package.
LAYERS = (
    ("command line", ["cli.*"]),
    ("web page", ["ui.*"]),
    ("commands", ["commands.*"]),
    ("read-only views", ["views.*"]),
    ("start and stop DBOS", ["runtime.*"]),
    ("the DBOS story", ["integration"]),
    ("the steps' work", ["steps.*", "sources.plan", "sources.rows"]),
    ("records, inputs and rows", ["transform", "sources.*", "store.*", "tables.*"]),
    ("services", ["database", "models", "telemetry.*", "generate.*", "codec.*"]),
    ("foundation", ["errors", "contract", "__init__"]),
)
MAX_MODULE_LINES = 450
MAX_CLI_LINES = 350
MAX_ROOT_MODULES = 8
MAX_FUNCTION_LINES = 60
OUTSIDE = ("tests", "benchmarks", "migrations", "examples", "deploy", "docs", "data")


@functools.cache
def modules() -> dict:
    """module name (``sources.scan``; a package is its ``__init__``) -> path. Folders outside
    the package (tests, the virtualenv...) are not walked at all."""
    found = {}
    for folder, subfolders, files in os.walk(REPO):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith((".", "__"))
                               and not (Path(folder) == REPO and d in OUTSIDE))
        for name in sorted(files):
            if name.endswith(".py"):
                relative = (Path(folder) / name).relative_to(REPO)
                found[".".join(relative.with_suffix("").parts)] = Path(folder) / name
    return found


def layer_of(module: str) -> int:
    """The module's layer: 0 is the top."""
    for number, (_, names) in enumerate(LAYERS):
        for name in names:
            if name == module or (name.endswith(".*") and module.startswith(name[:-1])) \
                    or (name.endswith(".*") and module == f"{name[:-2]}.__init__"):
                return number
    raise AssertionError(f"{module} is in no layer of LAYERS: add it to the table")


def imports_of(module: str, path: Path, known: dict) -> set:
    """The package's modules ``module`` imports, at the top or inside a function."""
    package = module.split(".")[:-1] if not module.endswith("__init__") else module.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets = []
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[:len(package) - (node.level - 1)]
            stem = base + (node.module.split(".") if node.module else [])
            targets = [".".join(stem + [alias.name]) for alias in node.names] + [".".join(stem)]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(PACKAGE):
            stem = node.module.split(".")[1:]
            targets = [".".join(stem + [alias.name]) for alias in node.names] + [".".join(stem)]
        elif isinstance(node, ast.Import):
            targets = [".".join(a.name.split(".")[1:]) for a in node.names
                       if a.name.startswith(PACKAGE + ".")]
        for target in targets:
            target = target or "__init__"
            if target in known:
                found.add(target)
            elif f"{target}.__init__" in known:
                found.add(f"{target}.__init__")
    found.discard(module)
    return found


def graph() -> dict:
    known = modules()
    return {module: imports_of(module, path, known) for module, path in known.items()}


def test_every_module_has_a_layer():
    for module in modules():
        layer_of(module)


def test_imports_only_run_down_the_layers():
    upward = [f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} "
              f"({LAYERS[layer_of(target)][0]})"
              for module, targets in graph().items() for target in sorted(targets)
              if layer_of(target) < layer_of(module)]
    assert not upward, "imports that run up the layers:\n" + "\n".join(upward)


def package_graph() -> dict:
    """The same imports between rooms: a package (``sources``, ``store``...) is one room, a
    top-level module is its own."""
    room = lambda module: module.split(".")[0]  # noqa: E731
    rooms = {}
    for module, targets in graph().items():
        rooms.setdefault(room(module), set()).update(room(t) for t in targets)
    for name, targets in rooms.items():
        targets.discard(name)
    return rooms


@pytest.mark.parametrize("edges", [graph, package_graph], ids=["modules", "packages"])
def test_no_import_circles(edges):
    edges = edges()
    circles, state = [], {}

    def visit(module: str, trail: list) -> None:
        state[module] = "open"
        for target in sorted(edges.get(module, ())):
            if state.get(target) == "open":
                circles.append(" -> ".join(trail[trail.index(target):] + [module, target]))
            elif target not in state:
                visit(target, trail + [module])
        state[module] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module, [])
    assert not circles, "import circles:\n" + "\n".join(circles)


@pytest.mark.parametrize("module", sorted(modules()))
def test_modules_and_functions_stay_small(module):
    path = modules()[module]
    source = path.read_text()
    limit = MAX_CLI_LINES if module == "cli.main" else MAX_MODULE_LINES
    assert len(source.splitlines()) <= limit, f"{path.name} has over {limit} lines: split it by job"
    long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for node in ast.walk(ast.parse(source))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines in {path.name}: {', '.join(long)}"


def imported_names(path: Path) -> list:
    """(line, top-level name) of every library ``path`` imports, at the top or in a function."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name.split(".")[0]) for a in node.names]
    return found


def test_the_command_line_makes_no_dbos_calls():
    for module, path in modules().items():
        if module.startswith("cli."):
            tree = ast.parse(path.read_text())
            dbos = [line for line, name in imported_names(path) if name == "dbos"] \
                + [node.lineno for node in ast.walk(tree)
                   if isinstance(node, ast.Name) and node.id == "DBOS"]
            assert not dbos, f"{module} uses DBOS on lines {dbos}: call commands or views"


def test_only_the_command_line_knows_click():
    knowing = [f"{module} (line {line})" for module, path in modules().items()
               if not module.startswith("cli.")
               for line, name in imported_names(path) if name == "click"]
    assert not knowing, "click imported below the command line: " + ", ".join(knowing)


def test_the_root_keeps_a_handful_of_modules_and_every_package_says_what_it_holds():
    root = sorted(module for module in modules() if "." not in module)
    assert len(root) <= MAX_ROOT_MODULES and {"__init__", "integration", "models"} <= set(root), \
        f"{len(root)} modules at the root ({', '.join(root)}): a new module belongs in a package"
    for module, path in modules().items():
        if module.endswith(".__init__"):
            doc = ast.get_docstring(ast.parse(path.read_text())) or ""
            assert "May import:" in doc, \
                f"{path.relative_to(REPO)}: its docstring says what the package holds and what it may import"
