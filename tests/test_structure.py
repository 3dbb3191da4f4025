"""The package's shape: one import name, no import cycles, layers that import one way (NEVER_IMPORTS), every
package folder installed, nothing imported from a top-level `model`/`trials`.

The repository root is the package `ghostsweep` (pyproject's package-dir), so a wheel must hold `ghostsweep/…`
only, and a plain (non-editable) install must work from any folder.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "ghostsweep"
SUBPACKAGES = ("model", "trials", "orchestrator")


def package_modules() -> dict[str, Path]:
    """Every module of the package by dotted name (the repository root is `ghostsweep`)."""
    modules = {PACKAGE: REPO / "__init__.py", f"{PACKAGE}.__main__": REPO / "__main__.py"}
    for sub in SUBPACKAGES:
        for path in (REPO / sub).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join((PACKAGE, *(parts[:-1] if parts[-1] == "__init__" else parts)))
            modules[name] = path
    return modules


def _type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imported_modules(path: Path, name: str, known: set[str]) -> set[str]:
    """The package modules this file imports, anywhere in it (lazy imports too) but under `if TYPE_CHECKING`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = {id(n) for block in ast.walk(tree) if _type_checking_only(block) for n in ast.walk(block)}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    edges = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            edges |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1], base]).strip(".")
            for alias in node.names:
                edges.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {edge for edge in edges if edge in known and edge != name}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path of module names, or None (iterative DFS with colours)."""
    colour = dict.fromkeys(graph, 0)  # 0 unseen, 1 on the stack, 2 finished
    for root in graph:
        if colour[root]:
            continue
        stack, path = [(root, iter(sorted(graph[root])))], [root]
        colour[root] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                colour[node] = 2
                stack.pop()
                path.pop()
            elif colour[child] == 1:
                return [*path[path.index(child):], child]
            elif colour[child] == 0:
                colour[child] = 1
                stack.append((child, iter(sorted(graph[child]))))
                path.append(child)
    return None


def test_find_cycle_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_between_modules() -> None:
    modules = package_modules()
    graph = {name: imported_modules(path, name, set(modules)) for name, path in modules.items()}
    assert len(graph) > 20 and any(graph.values())  # the walk found the package and its imports
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def within(module: str, area: str) -> bool:
    return module == area or module.startswith(f"{area}.")


ORCHESTRATOR = f"{PACKAGE}.orchestrator"
BACKENDS, CLI, MONITOR, REPORT, SPEC, SUBMISSION, SWEEPDIR = (
    f"{ORCHESTRATOR}.{sub}" for sub in ("backends", "cli", "monitor", "report", "spec", "submission", "sweepdir"))
# The layers: orchestrator → trials → model, and inside orchestrator/ the sweep directory and the report never reach
# for what submits, follows or runs trials. What each area never imports:
NEVER_IMPORTS = {
    f"{PACKAGE}.model": (f"{PACKAGE}.trials", ORCHESTRATOR),
    f"{PACKAGE}.trials": (ORCHESTRATOR,),
    SWEEPDIR: (REPORT, SUBMISSION, MONITOR, BACKENDS, CLI),
    SPEC: (SUBMISSION, MONITOR, BACKENDS, CLI),
    REPORT: (BACKENDS, SUBMISSION, MONITOR, CLI),
    BACKENDS: (REPORT, MONITOR, CLI),
}
# The one edge across a rule, and why: a spec names its backend, and the backends' names are theirs.
ALLOWED = {(f"{SPEC}.sweepspec", BACKENDS)}  # BACKEND_MODULES, the name table (backends import lazily)
# Rendering the W&B Report (wandb-workspaces) is a leaf of the report: only the CLI imports it, so that what reads
# and builds a report never needs wandb-workspaces.
WANDB_REPORT = f"{REPORT}.wandb_report"


def test_only_the_cli_renders_the_wandb_report() -> None:
    importers = [f"{name} -> {imported}" for name, imported in import_edges()
                 if within(imported, WANDB_REPORT) and not within(name, CLI)]
    assert importers == []


# The CLI is the top: only it and the package's `python -m ghostsweep` import it.
CLI_IMPORTERS = (CLI, f"{PACKAGE}.__main__")


def import_edges() -> list[tuple[str, str]]:
    modules = package_modules()
    return [(name, imported) for name, path in modules.items()
            for imported in imported_modules(path, name, set(modules))]


def test_each_layer_imports_only_what_it_may() -> None:
    crossing = [f"{name} -> {imported}" for name, imported in import_edges()
                for area, forbidden in NEVER_IMPORTS.items() if within(name, area)
                for other in forbidden if within(imported, other) and (name, other) not in ALLOWED]
    assert crossing == []


def test_only_the_entry_points_import_the_cli() -> None:
    importers = [f"{name} -> {imported}" for name, imported in import_edges()
                 if within(imported, CLI) and not any(within(name, entry) for entry in CLI_IMPORTERS)]
    assert importers == []


def test_every_package_folder_is_installed() -> None:
    """A subpackage missing from pyproject's explicit list would be left out of the wheel, and imports break."""
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {".".join((PACKAGE, *init.parent.relative_to(REPO).parts))
               for sub in SUBPACKAGES for init in (REPO / sub).rglob("__init__.py")}
    assert sorted(folders - listed) == []


def test_every_import_names_the_package() -> None:
    """No module imports a bare `model`, `trials` or `orchestrator`: those would be the user's files."""
    bare = []
    for name, path in package_modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else [])
            bare += [f"{name}: {n}" for n in names if n.split(".")[0] in SUBPACKAGES]
    assert bare == []


def test_orchestrator_imports_nothing_from_top_level_model_or_trials(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", "import ghostsweep.orchestrator.cli"],
                          cwd=tmp_path, capture_output=True, text=True, check=True)
    imported = [line.rpartition("|")[2].strip() for line in done.stderr.splitlines() if "|" in line]
    assert "ghostsweep.orchestrator.cli" in imported
    assert [m for m in imported if m.split(".")[0] in SUBPACKAGES] == []


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`python -m build` (sdist, then the wheel from it) with the installed setuptools: no download."""
    pytest.importorskip("build")
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(REPO)],
                   capture_output=True, text=True, check=True, timeout=300)
    return out


def test_wheel_holds_only_the_ghostsweep_package(built: Path) -> None:
    (wheel,) = built.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {PACKAGE, f"{PACKAGE}-0.1.0.dist-info"}
    for module in ("model/registry.py", "trials/trialdir.py", "orchestrator/cli/__init__.py",
                   "orchestrator/backends/base.py", "orchestrator/spec/throughput.json"):
        assert f"{PACKAGE}/{module}" in names
    assert not [n for n in names if n.startswith((f"{PACKAGE}/tests", f"{PACKAGE}/bench", f"{PACKAGE}/slurm"))]


def test_plain_install_runs_from_any_folder(tmp_path: Path) -> None:
    """`pip install .` (not editable) into a folder of its own; the CLI runs from a folder with a `model.py`."""
    target, elsewhere = tmp_path / "site", tmp_path / "work"
    elsewhere.mkdir()
    (elsewhere / "model.py").write_text("raise ImportError('user model.py imported')\n")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(REPO)], capture_output=True, text=True, check=True, timeout=300)
    assert sorted(p.name for p in target.iterdir() if not p.name.endswith((".dist-info", "bin"))) == [PACKAGE]
    env = os.environ | {"PYTHONPATH": str(target)}
    where = subprocess.run([sys.executable, "-c", "import ghostsweep.orchestrator.cli as c; print(c.__file__)"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, check=True)
    assert where.stdout.startswith(str(target / PACKAGE))
    models = subprocess.run([sys.executable, "-m", PACKAGE, "models", "resnet20", "--format", "json"],
                            cwd=elsewhere, env=env, capture_output=True, text=True)
    assert models.returncode == 0 and "resnet20" in models.stdout, models.stderr
