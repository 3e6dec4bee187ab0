"""Model artifacts are verified by SHA-256 before anything loads them: joblib is pickle.

A tampered copy of the committed artifacts is refused before `joblib.load` runs. The proof is a
preprocess.joblib replaced by a pickle that would create a file when unpickled: the file never
appears. An AST scan checks that nothing else in the package unpickles anything.
"""

from __future__ import annotations

import ast
import os
import pickle
import shutil
from pathlib import Path

import pytest

from fraud_pipeline.config import PACKAGE_ROOT, get_settings
from fraud_pipeline.model.artifacts import (
    BOOSTER_FILE,
    PREPROCESS_FILE,
    SAGEMAKER_FILE,
    ArtifactError,
    load_model,
)
from fraud_pipeline.serving.model_server import load_booster

UNPICKLERS = {("joblib", "load"), ("pickle", "load"), ("pickle", "loads"), ("dill", "load")}


class Canary:
    """Unpickling this creates `path`: proof that the bytes were executed."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (str(self.path),))


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    copy = tmp_path / "artifacts"
    shutil.copytree(get_settings().artifacts_dir, copy)
    return copy


def test_the_committed_artifacts_load(artifacts):
    assert load_model(artifacts).threshold > 0
    assert load_booster(artifacts).num_features > 0


def test_a_malicious_pickle_is_refused_before_it_is_unpickled(artifacts, tmp_path):
    canary = tmp_path / "executed"
    (artifacts / PREPROCESS_FILE).write_bytes(pickle.dumps(Canary(canary)))
    with pytest.raises(ArtifactError, match="refusing to load an altered artifact"):
        load_model(artifacts)
    assert not canary.exists()


@pytest.mark.parametrize("name", [PREPROCESS_FILE, BOOSTER_FILE, SAGEMAKER_FILE])
def test_one_changed_byte_is_refused(artifacts, name):
    path = artifacts / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="SHA-256"):
        load_model(artifacts)
    if name == SAGEMAKER_FILE:  # the model server checks the tarball it serves
        with pytest.raises(ArtifactError, match="SHA-256"):
            load_booster(artifacts)


def test_nothing_else_unpickles():
    """Every joblib/pickle load in the package is in model.artifacts.load_model, after verify()."""
    found = []
    for path in sorted((PACKAGE_ROOT / "src" / "fraud_pipeline").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef):
                continue
            calls = [n for n in ast.walk(function) if isinstance(n, ast.Call)]
            for call in calls:
                func = call.func
                if (
                    isinstance(func, ast.Attribute)
                    and isinstance(func.value, ast.Name)
                    and (func.value.id, func.attr) in UNPICKLERS
                ):
                    verified = any(
                        isinstance(c.func, ast.Name)
                        and c.func.id == "verify"
                        and c.lineno < call.lineno
                        for c in calls
                    )
                    found.append((path.parent.name + "/" + path.name, function.name, verified))
    assert found == [("model/artifacts.py", "load_model", True)]
