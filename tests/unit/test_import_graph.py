"""The import arrows (read from the source with ast, every import counted, those inside functions too):
no cycle between the modules of the apps (a services <-> tasks loop included), no product module imports
the development tools or the tests, and the benches import no tests. Imports under `if TYPE_CHECKING:` never
run and are left out."""

from __future__ import annotations

import ast
from pathlib import Path

import dramatiq

from metriport_bulk.lib import messages

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("metriport_bulk", "patients", "bulkimport", "docqueries", "webhooks", "idempotency", "cohorts")
PACKAGES = (*PRODUCT, "devtools")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources(packages: tuple[str, ...]) -> dict[str, Path]:
    found = {}
    for package in packages:
        if not (ROOT / package).is_dir():
            continue
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" not in path.parts:
                found[_module_name(path)] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported_names(tree: ast.AST) -> list[tuple[str, str | None]]:
    """(module, name) of every import that runs: `import a.b` gives (a.b, None), `from a import b` (a, b)."""
    found: list[tuple[str, str | None]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend((alias.name, None) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.extend((node.module, alias.name) for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the modules among `modules` it imports. `from package import submodule` is an arrow to the
    submodule (the package's own `__init__` importing its submodules is no loop); any other name imported
    from a module is an arrow to that module."""

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for module, imported in _imported_names(ast.parse(path.read_text(), filename=str(path))):
            submodule = f"{module}.{imported}"
            target = submodule if imported and submodule in modules else known(module)
            if target and target != name:
                graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
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

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _describe(graph: dict[str, set[str]], component: list[str]) -> str:
    members = set(component)
    return "; ".join(f"{name} -> {', '.join(sorted(graph[name] & members))}" for name in component)


def test_no_import_cycle_between_the_modules_of_the_apps() -> None:
    graph = import_graph(_sources(PACKAGES))
    assert {"bulkimport.tasks", "docqueries.tasks", "webhooks.tasks"} <= graph.keys()
    assert "bulkimport.services.dispatch" in graph["bulkimport.tasks"]
    loops = cycles(graph)
    assert not loops, "import cycles: " + " | ".join(_describe(graph, component) for component in loops)


def test_the_cycle_finder_finds_a_services_tasks_loop_even_through_a_deferred_import(tmp_path: Path) -> None:
    """The failure mode this guards against: services importing the actors inside a function."""
    (tmp_path / "services.py").write_text("def send():\n    from app import tasks\n    tasks.run.send()\n")
    (tmp_path / "tasks.py").write_text("from app import services\n")
    (tmp_path / "types.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from app import tasks\n"
    )
    modules = {f"app.{name}": tmp_path / f"{name}.py" for name in ("services", "tasks", "types")}
    graph = import_graph(modules)
    assert cycles(graph) == [["app.services", "app.tasks"]]
    assert graph["app.types"] == set()  # a TYPE_CHECKING import never runs


def test_product_modules_import_neither_the_development_tools_nor_the_tests() -> None:
    offenders = [
        f"{name} imports {module}"
        for name, path in _sources(PRODUCT).items()
        for module, _ in _imported_names(ast.parse(path.read_text()))
        if module.split(".")[0] in ("devtools", "tests")
    ]
    assert not offenders


def test_the_benches_import_no_tests() -> None:
    offenders = [
        f"{path.name} imports {module}"
        for path in (ROOT / "bench").glob("*.py")
        for module, _ in _imported_names(ast.parse(path.read_text()))
        if module.split(".")[0] == "tests"
    ]
    assert not offenders


def test_every_actor_reference_names_a_registered_actor() -> None:
    """The services send by name: each name must be an actor some app's tasks declared (each app's
    AppConfig.ready() imported them at start-up, before any test ran). An unknown name raises here."""
    broker = dramatiq.get_broker()
    owners = {broker.get_actor(ref.name).fn.__module__ for ref in messages.REFS}
    assert owners == {"bulkimport.tasks", "docqueries.tasks", "webhooks.tasks"}


def test_every_app_of_the_product_is_checked() -> None:
    """A new app is in PRODUCT (or is the development tools), so its imports are checked too (cohorts was once
    left out)."""
    apps = {path.parent.name for path in ROOT.glob("*/apps.py")}
    assert apps <= set(PACKAGES), sorted(apps - set(PACKAGES))
