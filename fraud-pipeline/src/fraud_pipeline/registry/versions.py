"""The model_versions table (sql/migrations/019): register, promote, roll back, list.

A version enters as 'challenger' once its artifacts are verified (checksums and library
versions), copied into the store and verified again there; `promote` makes it the champion and
retires the previous one; `rollback` brings back the champion retired last. The registry keeps
the SHA-256 of every file, metadata.json's included, so whoever loads a version later checks it
against the database, not against files that may have been altered with their metadata.
A partial unique index guarantees at most one champion; an advisory lock serialises changes.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from psycopg2.extensions import connection as Connection

from fraud_pipeline.model.checksums import (
    METADATA_FILE,
    ArtifactError,
    sha256_of,
    verify_files,
)
from fraud_pipeline.registry.store import ModelStore

log = logging.getLogger(__name__)

_LOCK_ID = 0x4D4F444C  # "MODL": one registry change at a time
_SELECT = (
    "SELECT version, location, sha256, training_data_from, training_data_to, metrics, status, "
    "registered_at, promoted_at, promoted_by, reason, retired_at FROM model_versions "
)


class RegistryError(RuntimeError):
    """The registry change is not allowed (unknown version, wrong status...)."""


@dataclass(frozen=True)
class ModelVersion:
    version: str
    location: str
    sha256: dict[str, str]
    training_data_from: datetime | None
    training_data_to: datetime | None
    metrics: dict[str, Any]
    status: str
    registered_at: datetime
    promoted_at: datetime | None
    promoted_by: str | None
    reason: str | None
    retired_at: datetime | None


def _fetch(conn: Connection, query: str, params: tuple[Any, ...] = ()) -> list[ModelVersion]:
    with conn.cursor() as cur:
        cur.execute(query, params)
        return [ModelVersion(*row) for row in cur.fetchall()]


def list_versions(conn: Connection) -> list[ModelVersion]:
    return _fetch(conn, _SELECT + "ORDER BY registered_at, version")


def get_version(conn: Connection, version: str) -> ModelVersion | None:
    rows = _fetch(conn, _SELECT + "WHERE version = %s", (version,))
    return rows[0] if rows else None


def champion(conn: Connection) -> ModelVersion | None:
    rows = _fetch(conn, _SELECT + "WHERE status = 'champion'")
    return rows[0] if rows else None


def describe(artifacts_dir: Path, metadata: dict[str, Any]) -> dict[str, Any]:
    """The registry's columns of a version from its metadata: checksums (metadata.json's
    included), the generated training data's range, and the metrics measured at training."""
    span = metadata.get("training_data", {}).get("generated_range") or [None, None]
    return {
        "version": str(metadata["model_version"]),
        "sha256": {**metadata["sha256"], METADATA_FILE: sha256_of(artifacts_dir / METADATA_FILE)},
        "training_data_from": span[0],
        "training_data_to": span[1],
        "metrics": metadata.get("metrics", {}),
    }


def _insert(conn: Connection, row: dict[str, Any], location: str, status: str, by: str) -> None:
    promoted = status == "champion"
    with conn.cursor() as cur:
        cur.execute(
            """INSERT INTO model_versions (version, location, sha256, training_data_from,
                   training_data_to, metrics, status, promoted_at, promoted_by, reason)
               VALUES (%s, %s, %s, %s, %s, %s, %s,
                       CASE WHEN %s THEN now() END, %s, %s)""",
            (
                row["version"],
                location,
                json.dumps(row["sha256"]),
                row["training_data_from"],
                row["training_data_to"],
                json.dumps(row["metrics"]),
                status,
                promoted,
                by if promoted else None,
                "the committed model, registered by `db migrate`" if promoted else None,
            ),
        )


def register(conn: Connection, store: ModelStore, artifacts_dir: Path) -> ModelVersion:
    """Verify `artifacts_dir`, copy it into `store`, verify the copy, record it as challenger."""
    from fraud_pipeline.model.artifacts import read_metadata, verify

    metadata = read_metadata(artifacts_dir)
    verify(artifacts_dir, metadata)  # checksums and library versions, before anything is copied
    row = describe(artifacts_dir, metadata)
    with conn:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
        if get_version(conn, row["version"]) is not None:
            raise RegistryError(f"model version {row['version']} is already registered")
        location = store.put(row["version"], artifacts_dir, row["sha256"])
        verify_files(store.fetch(location), row["sha256"], "the model registry")
        _insert(conn, row, location, "challenger", "")
    registered = get_version(conn, row["version"])
    assert registered is not None
    return registered


def register_committed(conn: Connection, artifacts_dir: Path) -> bool:
    """Register the committed artifacts as the first champion, in an empty registry only (so a
    re-run changes nothing); they stay where they are. False when nothing was registered."""
    if not (artifacts_dir / METADATA_FILE).exists():
        log.warning("no %s in %s: no first champion registered", METADATA_FILE, artifacts_dir)
        return False
    metadata = json.loads((artifacts_dir / METADATA_FILE).read_text())  # `db migrate`: no pandas
    if not isinstance(metadata, dict) or not {"model_version", "sha256"} <= metadata.keys():
        # Not a model (yet): migrating must not fail for it; serving it fails, saying why.
        log.warning("%s in %s names no model: no first champion", METADATA_FILE, artifacts_dir)
        return False
    verify_files(artifacts_dir, metadata["sha256"])
    with conn:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
            cur.execute("SELECT EXISTS (SELECT 1 FROM model_versions)")
            if cur.fetchone()[0]:
                return False
        _insert(
            conn, describe(artifacts_dir, metadata), str(artifacts_dir), "champion", "db migrate"
        )
    return True


def _crown(conn: Connection, version: str, by: str, reason: str | None) -> None:
    """Retire the champion, then make `version` the champion (inside the caller's transaction)."""
    with conn.cursor() as cur:
        cur.execute(
            """UPDATE model_versions SET status = 'retired', retired_at = now()
               WHERE status = 'champion'"""
        )
        cur.execute(
            """UPDATE model_versions
               SET status = 'champion', promoted_at = now(), promoted_by = %s, reason = %s,
                   retired_at = NULL
               WHERE version = %s""",
            (by, reason, version),
        )


def promote(conn: Connection, version: str, by: str, reason: str | None = None) -> ModelVersion:
    """The challenger `version` becomes champion; the previous champion is retired."""
    with conn:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
        found = get_version(conn, version)
        if found is None:
            raise RegistryError(f"model version {version} is not registered")
        if found.status != "challenger":
            raise RegistryError(f"model version {version} is {found.status}, not a challenger")
        _crown(conn, version, by, reason)
    promoted = get_version(conn, version)
    assert promoted is not None
    return promoted


def rollback(conn: Connection, by: str, reason: str | None = None) -> ModelVersion:
    """The champion retired last becomes champion again; the current one is retired."""
    with conn:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
        last = _fetch(
            conn,
            _SELECT + "WHERE status = 'retired' AND retired_at IS NOT NULL "
            "ORDER BY retired_at DESC, promoted_at DESC",
        )
        if not last:
            raise RegistryError("no retired champion to roll back to")
        current = champion(conn)
        _crown(conn, last[0].version, by, reason or f"rollback from {current and current.version}")
    restored = get_version(conn, last[0].version)
    assert restored is not None
    return restored


def record_evaluation(
    conn: Connection,
    version: str,
    metrics: dict[str, Any],
    reason: str | None,
    training_data_to: datetime | None = None,
) -> ModelVersion:
    """Merge `metrics` (top-level keys) into the version's metrics and store `reason` (why a
    challenger stays one); a retrained version also records where its training data ends."""
    with conn, conn.cursor() as cur:
        cur.execute(
            """UPDATE model_versions
               SET metrics = metrics || %s::jsonb, reason = %s,
                   training_data_to = COALESCE(%s, training_data_to)
               WHERE version = %s""",
            (json.dumps(metrics), reason, training_data_to, version),
        )
        if cur.rowcount != 1:
            raise RegistryError(f"model version {version} is not registered")
    recorded = get_version(conn, version)
    assert recorded is not None
    return recorded


def fetch_verified(store: ModelStore, version: ModelVersion) -> Path:
    """A local folder with `version`'s artifacts, checked against the registry's SHA-256s."""
    folder = store.fetch(version.location)
    verify_files(folder, version.sha256, "the model registry")
    return folder


def relabelled_copy(artifacts_dir: Path, target: Path, version: str) -> Path:
    """`artifacts_dir` copied to `target` with metadata.json naming `version`: a second version
    of the same model (benchmarks and tests of shadow scoring and promotion). The files that
    metadata.json lists are unchanged, so their SHA-256s still hold; its own is the registry's."""
    shutil.copytree(artifacts_dir, target)
    metadata = json.loads((target / METADATA_FILE).read_text())
    metadata["model_version"] = version
    (target / METADATA_FILE).write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")
    return target


__all__ = ["ArtifactError", "ModelVersion", "RegistryError"]
