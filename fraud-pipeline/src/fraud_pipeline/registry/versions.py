"""The model_versions table (sql/migrations/019) and its history, model_events (030): register,
promote, roll back, list.

A version enters as 'challenger' once its artifacts are verified (checksums and library
versions), copied into the store and verified again there; `promote` makes any registered
version the champion (a retired one included; one that failed its gate only with
`override_gate` and a reason) and retires the previous one; `rollback` brings back the champion
before the current one, as the history of promotions and rollbacks says (a second rollback goes
one step further back, not back and forth). The registry keeps the SHA-256 of every file,
metadata.json's included, so whoever loads a version later checks it against the database, not
against files that may have been altered with their metadata.

A switch (promote, rollback) takes a `deploy`: the endpoint is pointed at the new champion inside
the registry's transaction, so the registry changes only if the endpoint took the model; if it
did not, the transaction is rolled back, a 'switch_failed' event says why, and SwitchError says
the registry is unchanged (and, when the endpoint may have taken it anyway, that the previous
champion was deployed again). Every change appends its events (who, when, why, figures) to the
append-only model_events. A partial unique index guarantees at most one champion; an advisory
lock serialises changes.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg2
from psycopg2.extensions import connection as Connection

from fraud_pipeline.config import get_settings
from fraud_pipeline.model.artifacts import read_metadata, verify
from fraud_pipeline.model.checksums import (
    METADATA_FILE,
    ArtifactError,
    sha256_of,
    verify_files,
)
from fraud_pipeline.registry.store import ModelStore
from fraud_pipeline.security import audit
from fraud_pipeline.storage.db import connect, database_url
from fraud_pipeline.storage.migrate import Migration, migrate

log = logging.getLogger(__name__)

_LOCK_ID = 0x4D4F444C  # "MODL": one registry change at a time
_SELECT = (
    "SELECT version, location, sha256, training_data_from, training_data_to, metrics, status, "
    "registered_at, promoted_at, promoted_by, reason, retired_at FROM model_versions "
)


class RegistryError(RuntimeError):
    """The registry change is not allowed (unknown version, wrong status...)."""


class SwitchError(RegistryError):
    """The endpoint did not take the new champion: the registry is as it was (says so)."""


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


# Points the endpoint at a version; what happened, in a sentence (registry.rollout.deployer).
Deploy = Callable[[ModelVersion], str]


@dataclass(frozen=True)
class ModelEvent:
    id: int
    at: datetime
    version: str
    event: str
    actor: str
    reason: str | None
    previous: str | None
    metrics: dict[str, Any]


def record_event(
    conn: Connection,
    version: str,
    event: str,
    actor: str,
    reason: str | None = None,
    *,
    previous: str | None = None,
    metrics: dict[str, Any] | None = None,
) -> None:
    """Append one event to model_events, and the same to the audit trail as `model.<event>`
    (inside the caller's transaction: both land with the switch they record, or neither)."""
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO model_events (version, event, actor, reason, previous, metrics) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            (version, event, actor or "unknown", reason, previous, json.dumps(metrics or {})),
        )
        detail = {"reason": reason, "previous": previous, "metrics": metrics or {}}
        audit.record(cur, actor or "unknown", f"model.{event}", version, detail)


def history(conn: Connection, version: str | None = None) -> list[ModelEvent]:
    """Every event, oldest first (of `version` only, if given)."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT id, at, version, event, actor, reason, previous, metrics FROM model_events "
            "WHERE %s IS NULL OR version = %s ORDER BY id",
            (version, version),
        )
        return [ModelEvent(*row) for row in cur.fetchall()]


def champion_stack(conn: Connection) -> list[str]:
    """The champions in force one after the other, as promotions push one and rollbacks pop
    one: the last is the champion, the one before it is where a rollback goes."""
    stack: list[str] = []
    for event in history(conn):
        if event.event == "promoted":
            stack.append(event.version)
        elif event.event == "rolled_back":
            if stack:
                stack.pop()
            if not stack or stack[-1] != event.version:
                stack.append(event.version)
    current = champion(conn)
    if current is not None and (not stack or stack[-1] != current.version):
        stack.append(current.version)
    return stack


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


def register(
    conn: Connection, store: ModelStore, artifacts_dir: Path, by: str = "unknown"
) -> ModelVersion:
    """Verify `artifacts_dir`, copy it into `store`, verify the copy, record it as challenger."""
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
        record_event(
            conn, row["version"], "registered", by, f"stored at {location}", metrics=row["metrics"]
        )
    registered = get_version(conn, row["version"])
    assert registered is not None
    return registered


def set_up_database(url: str | None = None) -> list[Migration]:
    """`db migrate`: the pending migrations, then the committed model as the first champion of an
    empty registry, so a fresh database scores from its first run. Returns the migrations
    applied now."""
    applied = migrate(url)
    conn = connect(url or database_url())
    try:
        if register_committed(conn, get_settings().artifacts_dir):
            log.info("registered the committed model as the first champion")
    finally:
        conn.close()
    return applied


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
        row = describe(artifacts_dir, metadata)
        _insert(conn, row, str(artifacts_dir), "champion", "db migrate")
        record_event(conn, row["version"], "registered", "db migrate", metrics=row["metrics"])
        record_event(
            conn,
            row["version"],
            "promoted",
            "db migrate",
            "the committed model, the first champion",
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


def _switch(
    conn: Connection,
    event: str,
    by: str,
    choose: Callable[[ModelVersion | None], tuple[ModelVersion, str, dict[str, Any]]],
    deploy: Deploy | None,
) -> ModelVersion:
    """Crown the version `choose` picks (given the current champion; it returns the version,
    the reason and the event's figures), record the events, then `deploy` it, all in one
    transaction: the registry changes only if the endpoint took the model."""
    current: ModelVersion | None = None
    target: ModelVersion | None = None
    deployed: str | None = None
    try:
        with conn:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
            current = champion(conn)
            target, reason, metrics = choose(current)
            previous = current.version if current else None
            _crown(conn, target.version, by, reason)
            record_event(
                conn, target.version, event, by, reason, previous=previous, metrics=metrics
            )
            if current is not None:
                record_event(
                    conn, current.version, "retired", by, f"replaced by {target.version}: {reason}"
                )
            if deploy is not None:
                deployed = deploy(target)
    except RegistryError:
        raise
    except Exception as error:
        if target is None:
            raise
        said = _compensate(deploy, current, error, deployed is not None)
        kept = current.version if current else "no version"
        message = (
            f"{target.version} is not the champion: {error}. The registry is unchanged "
            f"({kept} is still the champion){said}"
        )
        try:
            with conn:
                record_event(
                    conn,
                    target.version,
                    "switch_failed",
                    by,
                    f"{event.replace('_', ' ')} refused: {error}{said}",
                    previous=current.version if current else None,
                )
        except psycopg2.Error as unrecorded:  # the database itself failed: say both
            message += f" (and the failure could not be recorded: {unrecorded})"
        log.error("%s", message)
        raise SwitchError(message) from error
    switched = get_version(conn, target.version)
    assert switched is not None
    return switched


def _compensate(
    deploy: Deploy | None, current: ModelVersion | None, error: Exception, deployed: bool
) -> str:
    """After a failed switch: deploy the previous champion again when the endpoint may have
    taken the new one (it did, then the commit failed; or its answer was lost). What was done."""
    if deploy is None or current is None:
        return ""
    if not (deployed or getattr(error, "maybe_applied", False)):
        return ""
    try:
        return f"; compensated: {deploy(current)}"
    except Exception as failed:  # say it: the endpoint may now serve a non-champion
        return f"; NOT compensated, the endpoint may serve another model than {current.version}: {failed}"


def promote(
    conn: Connection,
    version: str,
    by: str,
    reason: str | None = None,
    *,
    override_gate: bool = False,
    deploy: Deploy | None = None,
) -> ModelVersion:
    """`version` (a challenger, or any earlier champion now retired) becomes the champion; the
    previous champion is retired. One that failed its retraining gate needs `override_gate`
    and a reason. With `deploy`, only if the endpoint takes it (see `_switch`)."""

    def choose(current: ModelVersion | None) -> tuple[ModelVersion, str, dict[str, Any]]:
        found = get_version(conn, version)
        if found is None:
            raise RegistryError(f"model version {version} is not registered")
        if found.status == "champion":
            raise RegistryError(f"model version {version} is the champion already")
        gate = found.metrics.get("gate") or {}
        metrics: dict[str, Any] = {"status_before": found.status}
        why = reason or f"promoted by {by}"
        if gate.get("passed") is False:
            if not override_gate:
                raise RegistryError(
                    f"model version {version} failed its gate ({gate.get('reason')}): promote "
                    "it with --override-gate and a --reason"
                )
            if not reason:
                raise RegistryError("--override-gate needs a --reason: say why")
            why = f"{reason} (gate overridden: {gate.get('reason')})"
            metrics |= {"override_gate": True, "gate": gate}
        return found, why, metrics

    return _switch(conn, "promoted", by, choose, deploy)


def rollback(
    conn: Connection, by: str, reason: str | None = None, *, deploy: Deploy | None = None
) -> ModelVersion:
    """The champion before the current one becomes champion again; the current one is retired.
    A second rollback goes one step further back (the history's stack of champions)."""

    def choose(current: ModelVersion | None) -> tuple[ModelVersion, str, dict[str, Any]]:
        stack = champion_stack(conn)
        if current is None or len(stack) < 2:
            raise RegistryError("no earlier champion to roll back to")
        found = get_version(conn, stack[-2])
        assert found is not None
        return found, reason or f"rollback from {current.version}", {}

    return _switch(conn, "rolled_back", by, choose, deploy)


def record_evaluation(
    conn: Connection,
    version: str,
    metrics: dict[str, Any],
    reason: str | None,
    training_data_to: datetime | None = None,
    actor: str = "fraud_retrain",
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
        gate = metrics.get("gate")
        if gate is not None:
            record_event(
                conn,
                version,
                "gate_passed" if gate.get("passed") else "gate_failed",
                actor,
                gate.get("reason"),
                metrics=metrics,
            )
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


__all__ = ["ArtifactError", "ModelEvent", "ModelVersion", "RegistryError", "SwitchError"]
