"""The package's layout is its architecture: stage sub-packages, no cycles, dev code kept apart."""

from __future__ import annotations

import ast
import importlib
import os
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
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


@dataclass(frozen=True)
class LateImport:
    """An import statement inside a function: where, of what, and whether it says why."""

    file: str
    line: int
    module: str
    reason: bool

    @property
    def internal(self) -> bool:
        return self.module.split(".")[0] == "fraud_pipeline"


def late_imports(path: Path, root: Path) -> list[LateImport]:
    """The function-level imports of one file; a reason is a comment on the statement or on the
    line just above it."""
    text = path.read_text()
    lines = text.splitlines()
    found = []
    for function in ast.walk(ast.parse(text)):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(function):
            if isinstance(node, ast.Import | ast.ImportFrom):
                module = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
                statement = lines[node.lineno - 1 : node.end_lineno]
                above = lines[node.lineno - 2].strip() if node.lineno > 1 else ""
                reason = any("#" in line for line in statement) or above.startswith("#")
                relative = path.relative_to(root).as_posix()
                found.append(LateImport(relative, node.lineno, module or "", reason))
    return found


def package_late_imports() -> list[LateImport]:
    return [i for p in sorted(SOURCE.rglob("*.py")) for i in late_imports(p, SOURCE)]


def test_no_import_inside_a_function_gets_round_a_layer() -> None:
    """Issue #28: lazy imports of the package's own modules only where nothing is hidden: in the
    command line, the top layer (each adapter imports its command's module when it runs, so
    `--help` stays fast), in airflow_support, which the DAG files import at parse time, and
    the model server's HTTP layer (each says so). lint-imports sees function-level imports too."""
    internal = [i for i in package_late_imports() if i.internal and i.file != "cli.py"]
    assert Counter(i.file for i in internal) == {
        "pipeline/airflow_support.py": 4,
        "serving/model_server.py": 1,  # uvicorn only to serve (tests/serving/test_server_imports.py)
    }
    assert [i for i in internal if not i.reason] == []


def test_every_other_import_inside_a_function_says_why() -> None:
    """Third-party imports inside functions: optional or heavy ones (xgboost, boto3, Airflow,
    matplotlib), each with a one-line reason; no standard-library one (nothing to save)."""
    late = [i for i in package_late_imports() if not i.internal]
    assert [i for i in late if i.module.split(".")[0] in sys.stdlib_module_names] == []
    assert [f"{i.file}:{i.line} {i.module}" for i in late if not i.reason] == []
    assert len(late) >= 40  # the scan sees them (xgboost, sklearn, boto3, Airflow, ...)


def test_the_scan_sees_an_unexplained_import_inside_a_function(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "def f():\n    import xgboost\n    from fraud_pipeline import clock\n\n"
        "def g():\n    # heavy; only here\n    import boto3\n    import shap  # heavy\n"
    )
    found = {(i.module, i.internal, i.reason) for i in late_imports(module, tmp_path)}
    assert found == {
        ("xgboost", False, False),
        ("fraud_pipeline", True, False),
        ("boto3", False, True),
        ("shap", False, True),
    }


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
