"""The package's layout is its architecture: stage sub-packages, no cycles, dev code kept apart."""

from __future__ import annotations

import ast
import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fraud_pipeline.config import PACKAGE_ROOT

SOURCE = PACKAGE_ROOT / "src" / "fraud_pipeline"
CONFIG = PACKAGE_ROOT.parent / "pyproject.toml"  # [tool.importlinter]: the contracts
STAGES = [
    "ingest",
    "model",
    "serving",
    "storage",
    "pipeline",
    "alerting",
    "monitoring",
    "report",
    "security",
]


def module_name(path: Path) -> str:
    parts = path.relative_to(SOURCE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, top_level_only: bool) -> set[str]:
    """The fraud_pipeline modules a file imports (at module level only, if asked)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.startswith("fraud_pipeline"):
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("fraud_pipeline"))
    modules = {module_name(p) for p in SOURCE.rglob("*.py")}
    return {name for name in found if name in modules}


def graph(top_level_only: bool) -> dict[str, set[str]]:
    return {module_name(p): imports(p, top_level_only) for p in sorted(SOURCE.rglob("*.py"))}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """A module-level import cycle, as the list of modules on it (depth-first search)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                return [*stack[stack.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_is_a_subpackage_that_says_what_it_owns(stage: str) -> None:
    package = importlib.import_module(f"fraud_pipeline.{stage}")
    assert package.__file__ and Path(package.__file__).parent == SOURCE / stage
    assert package.__doc__ and len(package.__doc__.split()) >= 5, stage


def test_no_import_cycle_at_module_level() -> None:
    assert find_cycle(graph(top_level_only=True)) is None


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def lint_imports(source_root: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` with the repository's contracts, on the packages found first in
    `source_root` (a copy there shadows the installed fraud_pipeline)."""
    return subprocess.run(
        [
            str(Path(sys.executable).with_name("lint-imports")),
            "--no-cache",
            "--no-logo",
            str(CONFIG),
        ],
        cwd=source_root,
        env={**os.environ, "PYTHONPATH": str(source_root)},
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_import_contracts_hold() -> None:
    """The layers and "production never imports the dev stack" (also run by `make lint`)."""
    result = lint_imports(SOURCE.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 2 kept, 0 broken." in result.stdout
    assert not (SOURCE / "devstack").exists() and not (SOURCE / "bench").exists()


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        # a lower layer reaching up, even from inside a function: storage -> registry
        (
            "storage/migrate.py",
            "def _seed():\n    from fraud_pipeline.registry import versions\n",
            "layers",
        ),
        # a bottom layer reaching up to the model
        ("schema.py", "import fraud_pipeline.model.features\n", "fraud_pipeline layers"),
        # two siblings of one layer: report and pipeline are independent
        (
            "report/queries.py",
            "from fraud_pipeline.pipeline import steps\n",
            "fraud_pipeline layers",
        ),
        # production reaching into the dev package
        (
            "ingest/extract.py",
            "from fraud_devstack.stack import generate\n",
            "fraud_pipeline never imports fraud_devstack",
        ),
    ],
)
def test_a_broken_layer_breaks_the_contract(tmp_path: Path, module: str, line: str, contract: str):
    copy = tmp_path / "fraud_pipeline"
    shutil.copytree(SOURCE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    with (copy / module).open("a") as file:
        file.write("\n" + line)
    result = lint_imports(tmp_path)
    report = " ".join(result.stdout.split())
    assert result.returncode == 1, report
    assert f"{contract} BROKEN" in report and "Contracts: 1 kept, 1 broken." in report


def test_no_flat_module_is_left_beside_the_stages() -> None:
    top = sorted(p.stem for p in SOURCE.glob("*.py"))
    assert top == ["__init__", "cli", "clock", "config", "net", "schema", "wording"]


def test_tests_share_code_only_through_the_support_package() -> None:
    """No test module imports another test module or a conftest: shared code is tests.support."""
    tests_root = PACKAGE_ROOT.parent / "tests"
    offenders = []
    for path in sorted(tests_root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                parts = node.module.split(".")
                if parts[0] == "tests" and parts[1:2] != ["support"]:
                    offenders.append(f"{path.relative_to(tests_root)}: from {node.module}")
    assert offenders == []
    assert sorted(
        p.relative_to(tests_root).as_posix() for p in tests_root.rglob("conftest.py")
    ) == ["conftest.py"]
