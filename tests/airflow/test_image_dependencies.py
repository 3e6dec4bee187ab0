"""The Airflow image installs every distribution the DAGs' code imports (issue #28).

The DAG files are walked with the `fraud_pipeline` modules they reach, transitively, through
imports at module level and inside functions (a task's import runs on the worker all the same);
only `if TYPE_CHECKING:` blocks are left out. Each third-party top-level module is mapped to the
distributions that provide it, and one of them must be installed by airflow/Dockerfile: the
base image's Airflow, the fraud-pipeline package's dependencies (fraud-pipeline/pyproject.toml),
what the Dockerfile's pip line adds, and what those require in turn (their metadata, here).
"""

from __future__ import annotations

import ast
import functools
import re
import shutil
import sys
import tomllib
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from fraud_pipeline.config import PACKAGE_ROOT, REPO_ROOT

DAGS = REPO_ROOT / "airflow" / "dags"
DOCKERFILE = REPO_ROOT / "airflow" / "Dockerfile"
SOURCE = PACKAGE_ROOT / "src"
# Reachable from a DAG but never run in a deployment, each with why.
NOT_IN_IMAGE = {
    # storage.db starts an embedded PostgreSQL only when no server answers: a dev machine's
    # `make run`; the Airflow image always has its database.
    "pgserver",
}


_providers = functools.cache(metadata.packages_distributions)


def _runtime_imports(tree: ast.AST) -> Iterable[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth, except those under `if TYPE_CHECKING:`."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (n for child in node.orelse for n in _runtime_imports(child))
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        yield from _runtime_imports(node)


def _module_file(name: str, source: Path) -> Path | None:
    base = source.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def third_party_imports(entry_files: Iterable[Path], source: Path) -> set[str]:
    """The top-level third-party modules that `entry_files` and the fraud_pipeline modules they
    reach (found under `source`) import."""
    queue, seen, found = list(entry_files), set(), set()
    while queue:
        path = queue.pop()
        if path in seen:
            continue
        seen.add(path)
        for node in _runtime_imports(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                continue  # relative: within a package already walked
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
                names += [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                names = [alias.name for alias in node.names]
            for name in names:
                top = name.split(".")[0]
                if top == "fraud_pipeline":
                    parts = name.split(".")
                    # the module and its parent packages (their __init__ runs first)
                    for depth in range(1, len(parts) + 1):
                        if module := _module_file(".".join(parts[:depth]), source):
                            queue.append(module)
                elif top not in sys.stdlib_module_names and top != "__future__":
                    found.add(top)
    return found


def _requirements(names: Iterable[str]) -> set[str]:
    """`names` and everything they require, by the installed metadata (extras not asked for
    and other platforms' markers left out)."""
    wanted = {canonicalize_name(n) for n in names}
    queue = list(wanted)
    while queue:
        try:
            requires = metadata.requires(queue.pop()) or []
        except metadata.PackageNotFoundError:
            continue
        for text in requires:
            requirement = Requirement(text)
            if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
                continue
            name = canonicalize_name(requirement.name)
            if name not in wanted:
                wanted.add(name)
                queue.append(name)
    return wanted


@functools.cache
def image_distributions(dockerfile: Path) -> frozenset[str]:
    """What the Airflow image holds: its base image's Airflow, the pip line's requirements
    (an `-e DIR` is that package's dependencies), and their requirements."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    base = re.search(r"^FROM apache/airflow:(\S+?)-python", text, re.MULTILINE)
    assert base, f"{dockerfile}: not the official Airflow image"
    direct = {"apache-airflow"}
    for line in re.findall(r"^RUN .*pip install (.*)$", text, re.MULTILINE):
        words = line.split()
        skip_next = False
        for word, following in zip(words, [*words[1:], ""], strict=True):
            if skip_next:
                skip_next = False
            elif word in ("-c", "--constraint", "-r", "--requirement"):
                skip_next = True
            elif word in ("-e", "--editable"):
                pyproject = tomllib.loads((REPO_ROOT / following / "pyproject.toml").read_text())
                direct.add(pyproject["project"]["name"])
                direct.update(Requirement(r).name for r in pyproject["project"]["dependencies"])
                skip_next = True
            elif not word.startswith("-"):
                direct.add(Requirement(word.strip("\"'")).name)
    return frozenset(_requirements(direct))


def missing_distributions(
    modules: Iterable[str], installed: frozenset[str]
) -> dict[str, list[str]]:
    """The modules none of whose providing distributions is installed: module -> providers."""
    providers = _providers()
    missing = {}
    for module in sorted(set(modules) - NOT_IN_IMAGE):
        names = providers.get(module, [module])
        if not {canonicalize_name(n) for n in names} & installed:
            missing[module] = names
    return missing


def dag_files() -> list[Path]:
    return sorted(DAGS.glob("*.py"))


def test_the_airflow_image_installs_what_the_dags_import():
    modules = third_party_imports(dag_files(), SOURCE)
    # the walk reaches deep: the DAGs, the pipeline, the model and its AWS client
    assert {"airflow", "pandas", "psycopg2", "xgboost", "boto3", "jinja2"} <= modules
    assert missing_distributions(modules, image_distributions(DOCKERFILE)) == {}


def test_a_dag_reachable_import_the_image_lacks_is_found(tmp_path):
    """A function-level import, three modules away from the DAGs, of a distribution the image
    does not install (Streamlit is the report's, in its own image)."""
    copy = tmp_path / "fraud_pipeline"
    shutil.copytree(SOURCE / "fraud_pipeline", copy, ignore=shutil.ignore_patterns("__pycache__"))
    with (copy / "storage" / "watermark.py").open("a") as module:
        module.write("\n\ndef _chart() -> None:\n    import streamlit\n")
    installed = image_distributions(DOCKERFILE)
    assert missing_distributions(third_party_imports(dag_files(), SOURCE), installed) == {}
    modules = third_party_imports(dag_files(), tmp_path)
    assert missing_distributions(modules, installed) == {"streamlit": ["streamlit"]}


def test_an_install_line_without_the_package_leaves_its_dependencies_out(tmp_path):
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(
        "FROM apache/airflow:3.3.2-python3.11\n"
        "RUN pip install --no-cache-dir -c requirements.lock \\\n"
        '    "apache-airflow==3.3.2" apache-airflow-providers-postgres\n'
    )
    missing = missing_distributions(
        third_party_imports(dag_files(), SOURCE), image_distributions(dockerfile)
    )
    assert {"xgboost", "sklearn", "pyarrow"} <= missing.keys()
