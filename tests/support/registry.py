"""Model versions for the registry tests: the committed artifacts under another version name."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from fraud_pipeline.config import get_settings
from fraud_pipeline.model.checksums import METADATA_FILE


def model_version_copy(target: Path, version: str) -> Path:
    """The committed artifacts copied to `target`, metadata.json naming `version` (the files it
    lists are unchanged, so their SHA-256s still hold; metadata.json's own is the registry's)."""
    shutil.copytree(get_settings().artifacts_dir, target)
    metadata = json.loads((target / METADATA_FILE).read_text())
    metadata["model_version"] = version
    (target / METADATA_FILE).write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")
    return target


def tamper(path: Path) -> None:
    with path.open("ab") as stream:
        stream.write(b"tampered")
