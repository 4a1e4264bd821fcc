"""The import rules that keep dependencies pointing one way (see docs/architecture.md).

An ``ast`` walk over ``canvas/``: imports under ``if TYPE_CHECKING:`` are annotations only and
do not count; every other import does, wherever it is.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "canvas"

#: the model: what a canvas *is*; it never reaches the engine or the application
MODEL = (
    "canvas.signature",
    "canvas.primitives",
    "canvas.maps",
    "canvas.stamping",
    "canvas.canvas",
    "canvas.dag",
    "canvas._current",
    "canvas.request",
)
#: the edges: transports and stores know nothing of the engine, the model or the application
EDGES = ("canvas.transports", "canvas.backends", "canvas.bus")
APPLICATION = ("canvas.app", "canvas.task", "canvas.result", "canvas.cli")

#: what may be imported inside a function: optional or heavy dependencies, each with its reason
DEFERRABLE = (
    "networkx",
    "psycopg",
    "sqlalchemy",
    "django",
    "canvas.security",
    "canvas.contrib.django",
    "IPython",
    # the command line (click): loaded by app.start()/worker_main() only, not by every import
    "canvas.cli.main",
    # beat's scheduler, schedules and stores: a worker loads them with -B only (0.3 MiB a process)
    "canvas.beat.scheduler",
    # the dashboard extra: Starlette, uvicorn, prometheus-client, rich (canvas dashboard/events)
    "canvas.dashboard.monitor",
    "canvas.dashboard.server",
    "canvas.dashboard.terminal",
)


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    targets: tuple[str, ...]  # what it may import: ``from a import b`` is ``a`` and ``a.b``
    line: int
    in_function: bool
    commented: bool


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _targets(node: ast.Import | ast.ImportFrom, module: str) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:  # relative: resolve against the importing package
        package = module.split(".")[: -node.level] if node.level else []
        base = ".".join([*package, base] if base else package)
    return [base, *(f"{base}.{alias.name}" for alias in node.names)]


def imports() -> Iterator[Import]:
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text()
        yield from _walk(ast.parse(source), module_name(path), source.splitlines(), False)


def _walk(node: ast.AST, module: str, lines: list[str], in_function: bool) -> Iterator[Import]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _type_checking_only(child):
            orelse = ast.Module(body=child.orelse, type_ignores=[])
            yield from _walk(orelse, module, lines, in_function)
            continue
        if isinstance(child, ast.Import | ast.ImportFrom):
            line = lines[child.lineno - 1]
            above = lines[child.lineno - 2].strip() if child.lineno > 1 else ""
            commented = "#" in line or above.startswith("#")
            targets = tuple(_targets(child, module))
            yield Import(module, targets, child.lineno, in_function, commented)
            continue
        inner = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
        yield from _walk(child, module, lines, inner)


def _within(names: tuple[str, ...], prefixes: tuple[str, ...]) -> bool:
    return any(n == p or n.startswith(p + ".") for n in names for p in prefixes)


ALL = list(imports())


def test_the_walk_sees_the_package() -> None:
    # A rule that checks nothing passes; make sure the walk found the imports it judges.
    assert any(i.module == "canvas.app" and "canvas.core.dispatch" in i.targets for i in ALL)
    assert any(i.in_function and i.targets == ("networkx",) for i in ALL)


def test_the_model_never_imports_the_engine_or_the_application() -> None:
    bad = [
        f"{i.module}:{i.line} imports {i.targets[-1]}"
        for i in ALL
        if _within((i.module,), MODEL) and _within(i.targets, ("canvas.core", *APPLICATION))
    ]
    assert bad == [], "signatures, primitives and dag reach the engine only through self.app"


def test_the_engine_never_imports_the_application() -> None:
    bad = [
        f"{i.module}:{i.line} imports {i.targets[-1]}"
        for i in ALL
        if _within((i.module,), ("canvas.core",))
        and _within(i.targets, (*APPLICATION, "canvas.security", "canvas.visualize"))
    ]
    assert bad == [], "canvas.core may name app/task/result in annotations only (TYPE_CHECKING)"


def test_transports_and_stores_know_only_their_contracts() -> None:
    above = ("canvas.core", "canvas.security", *MODEL, *APPLICATION)
    bad = [
        f"{i.module}:{i.line} imports {i.targets[-1]}"
        for i in ALL
        if _within((i.module,), EDGES) and _within(i.targets, above)
    ]
    assert bad == []


def test_function_level_imports_are_optional_heavy_dependencies_with_a_reason() -> None:
    deferred = [i for i in ALL if i.in_function]
    not_allowed = [
        f"{i.module}:{i.line} imports {i.targets[-1]}"
        for i in deferred
        if not _within(i.targets, DEFERRABLE)
    ]
    assert not_allowed == [], "import it at the top of the module"
    unexplained = [f"{i.module}:{i.line}" for i in deferred if not i.commented]
    assert unexplained == [], "say in a comment why this import waits (what it costs, who needs it)"


@pytest.mark.parametrize(
    "modules",
    [
        "canvas",
        "canvas.core.worker, canvas.cli.worker",
        "canvas.cli.main, canvas.cli.beat, canvas.cli.status",
        "canvas.cli.dlq, canvas.dashboard.queues",  # they read any app's signed dead letters
    ],
)
def test_a_worker_process_loads_no_heavy_dependency_it_does_not_use(modules: str) -> None:
    # Given a fresh interpreter that imports what a worker (or the CLI) imports
    code = (
        f"import sys, {modules}\n"
        "heavy = ('networkx', 'cryptography', 'sqlalchemy', 'django')\n"
        "print(','.join(sorted(m for m in heavy if m in sys.modules)))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()
    # Then none of the heavy optional packages was loaded
    assert loaded == ""
