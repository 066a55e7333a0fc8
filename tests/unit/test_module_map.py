"""The package's shape: no import cycle, one home for exceptions, every module on the map."""

from __future__ import annotations

import ast
import re
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGE = REPO_ROOT / "python" / "gemini_batch"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, ast.Module]:
    return {_module_name(p): ast.parse(p.read_text(), str(p)) for p in PACKAGE.rglob("*.py")}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(module: str, tree: ast.Module, known: set[str]) -> set[str]:
    """Package modules ``module`` imports at run time (anywhere, lazily too; imports under
    ``if TYPE_CHECKING:`` never run and are left out)."""
    found: set[str] = set()
    skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
               and _is_type_checking(node) for n in ast.walk(node)}
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module
            if node.level:  # relative import
                base = ".".join(module.split(".")[: -node.level] + [node.module])
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(name for name in names if name in known and name != module)
    return found


def test_no_import_cycle_among_the_modules() -> None:
    modules = _modules()
    known = set(modules)
    # A package importing its own submodules (to offer them by name) is not a cycle.
    graph = {
        name: {dep for dep in _imports(name, tree, known) if not dep.startswith(f"{name}.")}
        for name, tree in modules.items()
    }
    assert graph["gemini_batch.build.stages"], "the walker found no imports: it is broken"
    try:
        list(TopologicalSorter(graph).static_order())
    except CycleError as cycle:
        pytest.fail(f"import cycle: {' -> '.join(cycle.args[1])}")


def test_every_exception_of_the_operator_lives_in_errors() -> None:
    """One hierarchy (the emulator, a program of its own, keeps its own under local/)."""
    homes = {}
    for name, tree in _modules().items():
        if name.startswith("gemini_batch.local"):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and any(
                re.search(r"(Error|Exception|Interrupted)$", ast.unparse(base))
                for base in node.bases
            ):
                homes[node.name] = name
    assert homes, "found no exception class: the check is broken"
    assert {cls: home for cls, home in homes.items() if home != "gemini_batch.errors"} == {}


def test_errors_form_one_hierarchy_and_the_interrupt_is_not_an_error() -> None:
    from gemini_batch import errors

    classes = [getattr(errors, name) for name in errors.__all__]
    user_errors = [cls for cls in classes if cls is not errors.BuildInterrupted]
    assert all(issubclass(cls, errors.GeminiBatchError) for cls in user_errors)
    assert not issubclass(errors.BuildInterrupted, errors.GeminiBatchError)


# Which room may import which (docs/design.md, "Rooms"). A room always imports itself;
# errors and exit codes (the package's top level) are for everyone.
ROOM_IMPORTS = {
    "rules": set(),
    "clients": {"rules"},
    "state": {"rules", "clients"},
    "routes": {"rules", "clients", "state"},
    "build": {"rules", "clients", "state", "routes"},
    "submit": {"rules", "clients", "state", "build"},
    "display": {"rules", "clients", "state", "build"},
    "cli": {"rules", "clients", "state", "build", "display", "submit", "local"},
    "airflow": {"rules", "clients", "state", "build", "display"},
    "local": {"rules", "clients"},
}


def _room(module: str) -> str | None:
    """``gemini_batch.build.model_run`` -> ``build``; the top level (errors, exit codes,
    the package itself) is no room."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or parts[-1] in ROOM_IMPORTS else None


def test_each_room_imports_only_the_rooms_below_it() -> None:
    modules = _modules()
    known = set(modules)
    rooms = {_room(name) for name in modules} - {None}
    assert rooms == set(ROOM_IMPORTS), "a room is missing from ROOM_IMPORTS (or gone)"
    wrong = sorted(
        f"{name} imports {dep}"
        for name, tree in modules.items()
        for dep in _imports(name, tree, known)
        if (room := _room(name)) and (other := _room(dep))
        and other != room and other not in ROOM_IMPORTS[room]
    )
    assert wrong == []


def test_every_module_is_on_the_module_map() -> None:
    """docs/design.md names every module of python/gemini_batch/ (outside the emulators of
    local/, which docs/local-stack.md and docs/vertex-emulator.md map)."""
    design = (REPO_ROOT / "docs" / "design.md").read_text()
    paths = sorted(
        str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
        if p.name != "__init__.py" and p.relative_to(PACKAGE).parts[0] != "local"
    )
    assert "build/model_run.py" in paths
    missing = [path for path in paths if f"`{path}`" not in design]
    assert missing == [], f"modules missing from docs/design.md's module map: {missing}"


def test_exit_codes_are_the_documented_ones() -> None:
    from gemini_batch.exit_codes import ExitCode

    cli_doc = (REPO_ROOT / "docs" / "cli.md").read_text()
    table = cli_doc[cli_doc.index("## Exit codes"):]
    documented = {int(code) for code in re.findall(r"^\|\s*`?(\d+)`?\s*\|", table, re.M)}
    assert documented == {int(code) for code in ExitCode}


def test_no_module_outside_the_emulators_is_over_500_lines() -> None:
    """Each module does one job: none outside local/ (the emulators) is over 500 lines."""
    sizes = {
        str(p.relative_to(PACKAGE)): len(p.read_text().splitlines())
        for p in PACKAGE.rglob("*.py") if p.relative_to(PACKAGE).parts[0] != "local"
    }
    assert "build/model_run.py" in sizes
    over = {path: lines for path, lines in sizes.items() if lines > 500}
    assert over == {}, f"modules over 500 lines: {over}"


def test_test_files_have_names_of_their_own() -> None:
    """pytest imports test files by base name (rootdir mode, no packages): two files of
    one name in different folders fail collection of the second ("import file
    mismatch") in a fresh checkout, whichever folder a test run starts from."""
    names: dict[str, list[str]] = {}
    for path in (REPO_ROOT / "tests").rglob("test_*.py"):
        names.setdefault(path.name, []).append(str(path.relative_to(REPO_ROOT)))
    assert {name: paths for name, paths in names.items() if len(paths) > 1} == {}
