"""Model versions for the registry tests: the committed artifacts under another version name."""

from __future__ import annotations

import json
from pathlib import Path

from fraud_pipeline.config import get_settings
from fraud_pipeline.model.checksums import METADATA_FILE
from fraud_pipeline.registry import models, versions
from fraud_pipeline.registry.store import LocalStore
from fraud_pipeline.registry.versions import relabelled_copy


def model_version_copy(target: Path, version: str) -> Path:
    """The committed artifacts copied to `target`, metadata.json naming `version`."""
    return relabelled_copy(get_settings().artifacts_dir, target, version)


def tamper(path: Path) -> None:
    with path.open("ab") as stream:
        stream.write(b"tampered")


def promoted_copy(conn, tmp_path: Path, monkeypatch, version: str, threshold: float) -> Path:
    """A copy of the committed model with its own threshold, registered and promoted in the
    registry only (the endpoint is left as it is); the store is the MODEL_STORE the pipeline
    reads. Its stored folder."""
    source = model_version_copy(tmp_path / version, version)
    metadata = json.loads((source / METADATA_FILE).read_text())
    metadata["threshold"] = threshold
    (source / METADATA_FILE).write_text(json.dumps(metadata))
    monkeypatch.setenv("MODEL_STORE", str(tmp_path / "store"))
    get_settings.cache_clear()
    registered = versions.register(conn, LocalStore(tmp_path / "store"), source)
    versions.promote(conn, version, "test", "a registry change without its reload")
    models.forget_models()
    return Path(registered.location)
