"""Model versions for the registry tests: the committed artifacts under another version name."""

from __future__ import annotations

from pathlib import Path

from fraud_pipeline.config import get_settings
from fraud_pipeline.registry.versions import relabelled_copy


def model_version_copy(target: Path, version: str) -> Path:
    """The committed artifacts copied to `target`, metadata.json naming `version`."""
    return relabelled_copy(get_settings().artifacts_dir, target, version)


def tamper(path: Path) -> None:
    with path.open("ab") as stream:
        stream.write(b"tampered")
