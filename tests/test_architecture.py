"""The shape of ``headwater/``: import layers with no upward import, no import circle, no module too large.

The layers are the import-linter contract in ``pyproject.toml`` (``[tool.importlinter]``); the circles are found
on grimp's graph of every import, those inside functions included (a circle through a lazy import is still a
circle to a reader). ``TYPE_CHECKING`` imports are left out: they never run.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import grimp
import networkx as nx

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "headwater"
MAX_LINES = 600


def _layers() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (contract,) = [c for c in config["contracts"] if c["type"] == "layers"]
    return [name.strip() for layer in contract["layers"] for name in layer.split("|")]


def test_imports_keep_to_the_layers() -> None:
    linter = Path(sys.executable).with_name("lint-imports")
    run = subprocess.run(
        [str(linter), "--config", str(ROOT / "pyproject.toml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "1 kept, 0 broken" in run.stdout


def test_every_module_of_the_package_has_a_layer() -> None:
    """A new top-level module or package outside the contract would escape it."""
    named = set(_layers())
    present = {
        f"headwater.{path.stem if path.is_file() else path.name}"
        for path in PACKAGE.iterdir()
        if (path.suffix == ".py" and path.stem != "__init__") or (path / "__init__.py").is_file()
    }
    assert present - named == set(), "add these to the layers in pyproject.toml's [tool.importlinter]"
    assert named - present == set(), "these layers name modules that no longer exist"


def test_no_module_imports_itself_back_through_others() -> None:
    graph = grimp.build_graph("headwater", exclude_type_checking_imports=True)
    edges = nx.DiGraph(
        (module, imported)
        for module in graph.modules
        for imported in graph.find_modules_directly_imported_by(module)
        if imported != module
    )
    circles = [" -> ".join([*cycle, cycle[0]]) for cycle in nx.simple_cycles(edges, length_bound=12)]
    assert circles == []


def test_no_module_is_over_600_lines_outside_migrations() -> None:
    sizes = {
        str(path.relative_to(ROOT)): len(path.read_text().splitlines())
        for path in PACKAGE.rglob("*.py")
        if "migrations" not in path.relative_to(PACKAGE).parts
    }
    assert {path: lines for path, lines in sizes.items() if lines > MAX_LINES} == {}
    assert len(sizes) > 100  # the walk found the package
