"""The model registry on the real PostgreSQL: register, promote, roll back, one champion."""

from __future__ import annotations

import threading

import psycopg2
import pytest

from fraud_pipeline.cli import main
from fraud_pipeline.config import get_settings
from fraud_pipeline.model.artifacts import read_metadata
from fraud_pipeline.model.checksums import ArtifactError
from fraud_pipeline.registry import versions
from fraud_pipeline.registry.store import LocalStore
from fraud_pipeline.registry.versions import set_up_database
from tests.support.registry import model_version_copy, tamper

COMMITTED = str(read_metadata(get_settings().artifacts_dir)["model_version"])


def _champions(conn) -> list[str]:
    return [row.version for row in versions.list_versions(conn) if row.status == "champion"]


def test_migrate_registers_the_committed_model_as_champion_once(clean_db, conn):
    set_up_database(clean_db)
    first = versions.list_versions(conn)
    assert [(row.version, row.status) for row in first] == [(COMMITTED, "champion")]
    assert (
        first[0].sha256["model.tar.gz"]
        == read_metadata(get_settings().artifacts_dir)["sha256"]["model.tar.gz"]
    )
    assert "metadata.json" in first[0].sha256
    assert first[0].training_data_from is not None and first[0].metrics
    set_up_database(clean_db)
    assert versions.list_versions(conn) == first  # re-running changes nothing


def test_register_promote_rollback(clean_db, conn, tmp_path):
    set_up_database(clean_db)
    store = LocalStore(tmp_path / "store")
    new = versions.register(conn, store, model_version_copy(tmp_path / "v2", "xgb-v2"))
    assert new.status == "challenger" and new.location == str(tmp_path / "store" / "xgb-v2")
    assert versions.fetch_verified(store, new) == tmp_path / "store" / "xgb-v2"
    assert _champions(conn) == [COMMITTED]
    with pytest.raises(versions.RegistryError, match="already registered"):
        versions.register(conn, store, tmp_path / "v2")

    promoted = versions.promote(conn, "xgb-v2", "alice", "better recall")
    assert (promoted.status, promoted.promoted_by, promoted.reason) == (
        "champion",
        "alice",
        "better recall",
    )
    old = versions.get_version(conn, COMMITTED)
    assert old is not None and old.status == "retired" and old.retired_at is not None
    assert _champions(conn) == ["xgb-v2"]
    with pytest.raises(versions.RegistryError, match="the champion already"):
        versions.promote(conn, "xgb-v2", "alice")

    restored = versions.rollback(conn, "bob")
    assert restored.version == COMMITTED and restored.promoted_by == "bob"
    assert restored.reason == "rollback from xgb-v2"
    assert _champions(conn) == [COMMITTED]
    assert versions.get_version(conn, "xgb-v2").status == "retired"


def test_at_most_one_champion_whatever_the_sql(clean_db, conn, tmp_path):
    set_up_database(clean_db)
    versions.register(
        conn, LocalStore(tmp_path / "store"), model_version_copy(tmp_path / "v2", "x2")
    )
    with pytest.raises(psycopg2.errors.UniqueViolation), conn, conn.cursor() as cur:
        cur.execute(
            "UPDATE model_versions SET status = 'champion', promoted_at = now() "
            "WHERE version = 'x2'"
        )
    assert _champions(conn) == [COMMITTED]


def test_a_tampered_artifact_is_refused_at_register_and_after_it(clean_db, conn, tmp_path):
    store = LocalStore(tmp_path / "store")
    bad = model_version_copy(tmp_path / "bad", "xgb-bad")
    tamper(bad / "model.ubj")
    with pytest.raises(ArtifactError, match="SHA-256"):
        versions.register(conn, store, bad)
    assert versions.list_versions(conn) == [] and not (tmp_path / "store").exists()

    good = versions.register(conn, store, model_version_copy(tmp_path / "good", "xgb-good"))
    tamper(tmp_path / "store" / "xgb-good" / "model.tar.gz")  # altered in the store later
    with pytest.raises(ArtifactError, match="model registry"):
        versions.fetch_verified(store, good)


def test_the_cli_registers_promotes_lists(clean_db, conn, tmp_path, monkeypatch, capsys):
    set_up_database(clean_db)
    monkeypatch.setenv("MODEL_STORE", str(tmp_path / "store"))
    get_settings.cache_clear()
    try:
        assert main(["model", "register", str(model_version_copy(tmp_path / "v2", "xgb-cli"))]) == 0
        assert main(["model", "promote", "xgb-cli", "--by", "carol", "--no-rollout"]) == 0
        assert main(["model", "promote", "nope", "--no-rollout"]) == 1
        assert main(["model", "list"]) == 0
    finally:
        get_settings.cache_clear()
    out = capsys.readouterr().out
    assert "registered xgb-cli as challenger" in out
    assert "model promote failed: model version nope is not registered" in out
    listing = dict(line.split("\t")[:2] for line in out.splitlines() if "\t" in line)
    assert listing == {COMMITTED: "retired", "xgb-cli": "champion"}
    assert versions.get_version(conn, "xgb-cli").promoted_by == "carol"


def test_concurrent_promotions_leave_one_champion(clean_db, conn, tmp_path):
    """Two operators promote two challengers at once: the lock serialises them, one wins."""
    store = LocalStore(tmp_path / "store")
    for name in ("xgb-a", "xgb-b"):
        versions.register(conn, store, model_version_copy(tmp_path / name, name))
    errors: list[BaseException] = []

    def promote(version: str) -> None:
        other = psycopg2.connect(clean_db)
        try:
            versions.promote(other, version, "ops")
        except BaseException as error:
            errors.append(error)
        finally:
            other.close()

    threads = [threading.Thread(target=promote, args=(name,)) for name in ("xgb-a", "xgb-b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    statuses = sorted(row.status for row in versions.list_versions(conn))
    assert statuses == ["champion", "retired"]
