"""The model artifact's checksum check, on the standard library alone.

The model server imports this (and nothing of pandas, scikit-learn or pydantic), so it can vouch
for `model.tar.gz` with the SHA-256 that `metadata.json` records; `artifacts` builds on it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Final

SAGEMAKER_FILE: Final = "model.tar.gz"
METADATA_FILE: Final = "metadata.json"
SAGEMAKER_MEMBER: Final = "xgboost-model"  # the name SageMaker's XGBoost container loads


class ArtifactError(RuntimeError):
    """An artifact is missing, altered, or was written by other library versions."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def expected_sha256(artifacts_dir: Path, name: str) -> str | None:
    """The SHA-256 of `name` recorded in `artifacts_dir`/metadata.json; None without metadata."""
    metadata = artifacts_dir / METADATA_FILE
    if not metadata.exists():
        return None
    try:
        return str(json.loads(metadata.read_text())["sha256"][name])
    except (ValueError, KeyError, TypeError) as error:
        raise ArtifactError(f"{metadata} records no SHA-256 for {name}: {error!r}") from error


def check_sha256(artifacts_dir: Path, name: str) -> None:
    """Refuse `artifacts_dir`/`name` if it differs from the SHA-256 in metadata.json beside it."""
    expected = expected_sha256(artifacts_dir, name)
    if expected is not None and sha256_of(artifacts_dir / name) != expected:
        raise ArtifactError(
            f"{artifacts_dir / name} does not match the SHA-256 in {artifacts_dir / METADATA_FILE}"
        )


def verify_files(
    artifacts_dir: Path, expected: Mapping[str, str], source: str = METADATA_FILE
) -> None:
    """Refuse a missing file of `expected` (name -> SHA-256, as `source` records it) or one whose
    SHA-256 differs: nothing altered is ever loaded, copied or served."""
    for name, sha256 in expected.items():
        path = artifacts_dir / name
        if not path.exists():
            raise ArtifactError(f"{path} is missing (listed in {source})")
        actual = sha256_of(path)
        if actual != sha256:
            raise ArtifactError(
                f"{path} has SHA-256 {actual}, but {source} says {sha256}: "
                "refusing to load an altered artifact"
            )
