"""The model server imports the standard library, numpy, xgboost and uvicorn (with its httptools
parser and uvloop loop) only; the image installs those.

`docker build` cannot run here, so the image is simulated: a fresh interpreter in which every
installed distribution the Dockerfile's `uv pip install` line does not bring (with its
dependencies) is absent runs the container's entry point on the committed artifacts, answers
/ping and /invocations (npy and CSV), and stops cleanly on SIGTERM. pandas, scikit-learn and pydantic must not be loaded, and
the third-party modules the server's own code imports must be exactly what the Dockerfile lists.
(xgboost itself imports pandas and scikit-learn when they happen to be installed, as in the dev
environment, and works without them: that is why the interpreter hides what the image lacks.)
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from functools import cache
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from fraud_pipeline.config import REPO_ROOT, get_settings
from fraud_pipeline.net import free_port
from fraud_pipeline.serving.http_server import SPEEDUPS

FORBIDDEN_MODULES = {"pandas", "sklearn", "pydantic", "pydantic_settings"}
FORBIDDEN_DISTRIBUTIONS = {"pandas", "pydantic", "pydantic-settings", "scikit-learn"}
DOCKERFILE = REPO_ROOT / "infra" / "sagemaker" / "Dockerfile"

SERVE_AND_LIST_MODULES = r"""
import importlib.abc, json, sys

ABSENT = set(json.loads(sys.argv[2]))


class NotInTheImage(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ABSENT:
            raise ModuleNotFoundError(f"No module named {name!r} (not in the image)", name=name)
        return None


sys.meta_path.insert(0, NotInTheImage())

import io, os, signal, threading, time, traceback, urllib.request
from pathlib import Path

import numpy as np

from fraud_pipeline.serving import model_server

artifacts, port = Path(sys.argv[1]), int(sys.argv[3])
features = len(json.loads((artifacts / "metadata.json").read_text())["feature_names"])
url = f"http://127.0.0.1:{port}"
result = {"answers": [], "error": None}


def client():  # ping until the server answers, score two rows (npy, CSV), stop it as docker does
    try:
        for _ in range(600):
            try:
                result["ping"] = urllib.request.urlopen(f"{url}/ping", timeout=30).status
                break
            except OSError:
                time.sleep(0.1)
        rows = np.linspace(0, 1, 2 * features, dtype=np.float32).reshape(2, features)
        npy = io.BytesIO()
        np.save(npy, rows)
        csv = "\n".join(",".join(f"{v:.9g}" for v in row) for row in rows).encode()
        for data, kind in ((npy.getvalue(), "application/x-npy"), (csv, "text/csv")):
            request = urllib.request.Request(
                f"{url}/invocations", data=data, headers={"Content-Type": kind, "Accept": "text/csv"}
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                result["answers"].append([float(v) for v in response.read().decode().split()])
    except Exception:
        result["error"] = traceback.format_exc()
    finally:
        os.kill(os.getpid(), signal.SIGTERM)


threading.Thread(target=client, daemon=True).start()
result["exit"] = model_server.main(
    {
        "SM_MODEL_DIR": str(artifacts),
        "SAGEMAKER_BIND_TO_PORT": str(port),
        "MODEL_SERVER_HOST": "127.0.0.1",
        "SAGEMAKER_MODEL_SERVER_WORKERS": "1",
    }
)
result["modules"] = {n: getattr(m, "__file__", None) for n, m in list(sys.modules.items())}
print(json.dumps(result))
"""


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def dockerfile_installs(dockerfile: Path) -> set[str]:
    """The distributions the Dockerfile's `uv pip install` lines name (options left out)."""
    text = dockerfile.read_text().replace("\\\n", " ")
    names: set[str] = set()
    for line in text.splitlines():
        match = re.search(r"uv pip install\s+(.*?)(?:&&|$)", line)
        if not match:
            continue
        skip_next = False
        for word in match.group(1).split():
            if skip_next:
                skip_next = False
            elif word in {"-c", "--constraint", "-r", "--requirement", "--python"}:
                skip_next = True
            elif not word.startswith(("-", "/", ".")):
                names.add(_normal(Requirement(word).name))
    return names


def with_dependencies(distributions: set[str]) -> set[str]:
    """The distributions and what they require (no extras): what uv installs in the image."""
    seen: set[str] = set()
    todo = list(distributions)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for line in requires:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(_normal(requirement.name))
    return seen


def absent_from(dockerfile: Path) -> list[str]:
    """Top-level modules of the installed distributions the image would not have."""
    image = with_dependencies(dockerfile_installs(dockerfile)) | {"fraud-pipeline"}
    return sorted(
        module
        for module, owners in metadata.packages_distributions().items()
        if not any(_normal(owner) in image for owner in owners)
        and module not in sys.stdlib_module_names
    )


@cache
def served(dockerfile: Path = DOCKERFILE) -> dict:
    """What a fresh interpreter with the image's packages only loaded to serve the artifacts."""
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            SERVE_AND_LIST_MODULES,
            str(get_settings().artifacts_dir),
            json.dumps(absent_from(dockerfile)),
            str(free_port()),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result: dict = json.loads(out.stdout.splitlines()[-1])
    assert result["error"] is None, result["error"]
    return result


def direct_imports(modules: dict[str, str | None]) -> set[str]:
    """Third-party distributions that the loaded fraud_pipeline modules import themselves."""
    owners = metadata.packages_distributions()
    tops: set[str] = set()
    for name, file in modules.items():
        if name.partition(".")[0] != "fraud_pipeline" or not file:
            continue
        for node in ast.walk(ast.parse(Path(file).read_text())):
            if isinstance(node, ast.Import):
                tops |= {alias.name.partition(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                tops.add(node.module.partition(".")[0])
    tops -= set(sys.stdlib_module_names) | {"fraud_pipeline", "__future__"}
    return {_normal(owners[top][0]) if top in owners else f"unknown:{top}" for top in tops}


def dockerfile_problems(installed: set[str], imported: set[str]) -> list[str]:
    """What is wrong with the image's install list, given what the server imports."""
    problems = []
    if installed & FORBIDDEN_DISTRIBUTIONS:
        problems.append(f"installs {sorted(installed & FORBIDDEN_DISTRIBUTIONS)}")
    if imported - installed:
        problems.append(f"misses {sorted(imported - installed)}, which the server imports")
    if installed - imported:
        problems.append(f"installs {sorted(installed - imported)}, which the server never imports")
    return problems


def test_the_server_answers_without_pandas_sklearn_or_pydantic():
    result = served()
    assert result["ping"] == 200 and result["exit"] == 0  # SIGTERM: a clean stop
    npy, csv = result["answers"]
    assert len(npy) == 2 and npy == pytest.approx(csv, abs=1e-6)
    loaded = {name.partition(".")[0] for name in result["modules"]}
    assert not FORBIDDEN_MODULES & loaded, f"the server loaded {FORBIDDEN_MODULES & loaded}"
    assert {"numpy", "xgboost", "uvicorn", "fraud_pipeline"} <= loaded


@cache
def top_level_modules_after(statement: str) -> frozenset[str]:
    """Top-level modules loaded in a fresh interpreter after `statement`.

    With an empty statement: what the interpreter loads by itself (e.g. Debian's sitecustomize),
    which the import under test is not to blame for.
    """
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return frozenset(name.partition(".")[0] for name in json.loads(out.stdout))


@pytest.mark.parametrize(
    ("module", "allowed"),
    [
        ("fraud_pipeline", set()),
        ("fraud_pipeline.model", set()),
        ("fraud_pipeline.serving", set()),
        ("fraud_pipeline.model.checksums", set()),
        ("fraud_pipeline.model.tarballs", set()),
        ("fraud_pipeline.serving.model_server", {"numpy"}),
    ],
)
def test_importing_loads_nothing_heavy(module, allowed):
    """In the full dev environment (everything installed): importing loads only `allowed`."""
    tops = top_level_modules_after(f"import {module}") - top_level_modules_after("")
    third_party = tops - set(sys.stdlib_module_names) - {"fraud_pipeline", "__main__"}
    third_party = {name for name in third_party if not name.startswith("_")}
    assert third_party <= allowed, f"import {module} loads {sorted(third_party - allowed)}"


def test_the_dockerfile_installs_exactly_what_the_server_imports():
    """What the server's code imports, and the parser and loop it has uvicorn load by name."""
    imported = direct_imports(served()["modules"])
    assert imported == {"numpy", "xgboost-cpu", "uvicorn"}
    loaded = {name.partition(".")[0] for name in served()["modules"]}
    assert set(SPEEDUPS) <= loaded
    needed = imported | set(SPEEDUPS)
    assert dockerfile_problems(dockerfile_installs(DOCKERFILE), needed) == [], DOCKERFILE


@pytest.mark.parametrize(
    ("packages", "problem"),
    [
        ("xgboost-cpu uvicorn httptools uvloop", "misses ['numpy']"),
        ("xgboost-cpu numpy uvicorn httptools uvloop pandas pydantic-settings", "installs"),
        ("xgboost numpy uvicorn httptools uvloop", "misses ['xgboost-cpu']"),
    ],
)
def test_the_check_fails_on_a_missing_or_a_heavy_package(tmp_path, packages, problem):
    fake = tmp_path / "Dockerfile"
    fake.write_text(
        f"FROM python:3.11-slim\nRUN uv pip install --system -c /tmp/requirements.lock {packages}\n"
    )
    imported = direct_imports(served()["modules"]) | set(SPEEDUPS)
    problems = dockerfile_problems(dockerfile_installs(fake), imported)
    assert any(p.startswith(problem) for p in problems), problems
