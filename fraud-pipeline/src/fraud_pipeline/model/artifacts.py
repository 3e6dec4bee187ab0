"""The model's artifacts: writing them, and loading them only after verifying them.

`fraud-pipeline/artifacts/` holds `preprocess.joblib` (the scikit-learn transformer), `model.ubj`
(the XGBoost booster, native format), `model.tar.gz` (the SageMaker model artifact: the booster as
`xgboost-model`) and `metadata.json` (version, threshold, features, metrics, library versions and
the SHA-256 of every other file). The file names and the checksum live in `checksums` (standard
library only: the model server imports them). joblib is pickle: nothing is unpickled before its
checksum and the library versions it was written with have been checked.
"""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

from fraud_pipeline.config import get_settings
from fraud_pipeline.model.checksums import (
    METADATA_FILE,
    SAGEMAKER_FILE,
    SAGEMAKER_MEMBER,
    ArtifactError,
    sha256_of,
    verify_files,
)
from fraud_pipeline.model.features import feature_frame

PREPROCESS_FILE: Final = "preprocess.joblib"
BOOSTER_FILE: Final = "model.ubj"
VERIFIED_LIBRARIES: Final = ("scikit-learn", "xgboost", "joblib")


def library_versions() -> dict[str, str]:
    import joblib  # heavy; only where a model is used
    import sklearn  # heavy; only where a model is used
    import xgboost  # heavy; only where a model is used

    return {
        "scikit-learn": sklearn.__version__,
        "xgboost": xgboost.__version__,
        "joblib": joblib.__version__,
    }


def sagemaker_tarball(booster_bytes: bytes) -> bytes:
    """A reproducible model.tar.gz (fixed mtime and owner) holding the booster."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(SAGEMAKER_MEMBER)
        info.size, info.mtime, info.mode = len(booster_bytes), 0, 0o644
        tar.addfile(info, io.BytesIO(booster_bytes))
    # gzip stores its own mtime: zero it so the same booster gives the same bytes.
    data = bytearray(buffer.getvalue())
    data[4:8] = b"\0\0\0\0"
    return bytes(data)


def read_metadata(artifacts_dir: Path) -> dict[str, Any]:
    path = artifacts_dir / METADATA_FILE
    if not path.exists():
        raise ArtifactError(f"{path} is missing: run `make train` to build the model artifacts")
    metadata: dict[str, Any] = json.loads(path.read_text())
    return metadata


def verify(artifacts_dir: Path, metadata: dict[str, Any]) -> None:
    """Refuse any artifact whose checksum or library versions differ from the metadata."""
    verify_files(artifacts_dir, metadata["sha256"])
    installed = library_versions()
    for library in VERIFIED_LIBRARIES:
        wanted = metadata["libraries"].get(library)
        if wanted != installed[library]:
            raise ArtifactError(
                f"{artifacts_dir} was written with {library} {wanted}, but {installed[library]} "
                "is installed: retrain (`make train`) or install the recorded version"
            )


@dataclass
class Model:
    """The verified transformer and booster, and what the pipeline needs to know about them."""

    preprocess: Any
    booster: Any  # xgboost.Booster
    metadata: dict[str, Any]

    @property
    def version(self) -> str:
        return str(self.metadata["model_version"])

    @property
    def threshold(self) -> float:
        return float(self.metadata["threshold"])

    @property
    def feature_names(self) -> list[str]:
        return list(self.metadata["feature_names"])

    def features(self, payments: pd.DataFrame, history: pd.DataFrame | None = None) -> np.ndarray:
        """The model's input matrix: row and card-history features, then the saved transformer."""
        return self.feature_table(payments, history)[1]

    def feature_table(
        self, payments: pd.DataFrame, history: pd.DataFrame | None = None
    ) -> tuple[pd.DataFrame, np.ndarray]:
        """The named features (what rules read) and the model's input matrix built from them."""
        named = feature_frame(payments, history)
        return named, np.asarray(self.preprocess.transform(named), dtype=np.float32)

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        """In-process probabilities (evaluation and tests; the DAG scores through the endpoint)."""
        import xgboost  # heavy; only where a model is used

        dmatrix = xgboost.DMatrix(matrix, feature_names=self.feature_names)
        return np.asarray(self.booster.predict(dmatrix), dtype=np.float64)


def _without(metadata: dict[str, Any], name: str | None) -> dict[str, Any]:
    return {**metadata, "sha256": {k: v for k, v in metadata["sha256"].items() if k != name}}


def load_model(artifacts_dir: Path | None = None, *, rebuilding: str | None = None) -> Model:
    """Load the artifacts after verifying every checksum and library version (but that of
    `rebuilding`, a derived file about to be written again, e.g. the monitoring reference)."""
    import joblib  # heavy; only where a model is used
    import xgboost  # heavy; only where a model is used

    artifacts_dir = Path(artifacts_dir or get_settings().artifacts_dir)
    metadata = read_metadata(artifacts_dir)
    verify(artifacts_dir, _without(metadata, rebuilding))
    preprocess = joblib.load(artifacts_dir / PREPROCESS_FILE)  # verified above
    booster = xgboost.Booster()
    booster.load_model(str(artifacts_dir / BOOSTER_FILE))
    booster.set_param({"nthread": 1})
    return Model(preprocess=preprocess, booster=booster, metadata=metadata)


def _write_metadata(artifacts_dir: Path, metadata: dict[str, Any]) -> None:
    path = artifacts_dir / METADATA_FILE
    path.write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")


def save_model(
    artifacts_dir: Path,
    preprocess: Any,
    booster: Any,
    metadata: dict[str, Any],
    extra_files: dict[str, bytes] | None = None,
) -> dict[str, Any]:
    """Write every artifact (and `extra_files`, e.g. the monitoring reference), then
    metadata.json with their checksums (last); return it."""
    import joblib  # heavy; only where a model is used

    artifacts_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(preprocess, artifacts_dir / PREPROCESS_FILE)
    booster_bytes = bytes(booster.save_raw(raw_format="ubj"))
    (artifacts_dir / BOOSTER_FILE).write_bytes(booster_bytes)
    (artifacts_dir / SAGEMAKER_FILE).write_bytes(sagemaker_tarball(booster_bytes))
    for name, data in (extra_files or {}).items():
        (artifacts_dir / name).write_bytes(data)
    files = (PREPROCESS_FILE, BOOSTER_FILE, SAGEMAKER_FILE, *(extra_files or {}))
    metadata = {
        **metadata,
        "libraries": {**metadata.get("libraries", {}), **library_versions()},
        "sha256": {name: sha256_of(artifacts_dir / name) for name in files},
    }
    _write_metadata(artifacts_dir, metadata)
    return metadata


def record_artifact(artifacts_dir: Path, name: str, data: bytes) -> dict[str, Any]:
    """Add (or replace) one file beside verified artifacts and list its SHA-256 in
    metadata.json: the other artifacts are verified first and left byte for byte as they are."""
    metadata = read_metadata(artifacts_dir)
    verify(artifacts_dir, _without(metadata, name))
    (artifacts_dir / name).write_bytes(data)
    metadata["sha256"] = {**metadata["sha256"], name: sha256_of(artifacts_dir / name)}
    _write_metadata(artifacts_dir, metadata)
    return metadata
