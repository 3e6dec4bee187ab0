"""The pipeline builds features and reasons with the registry's champion, not whatever sits in
ARTIFACTS_DIR: after a promotion the endpoint serves another model, and features built with the
committed transformer would be scored by a model fitted on another one (issue 17)."""

from __future__ import annotations

import io
import signal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests

from fraud_pipeline.config import get_settings
from fraud_pipeline.model.artifacts import load_model, read_metadata
from fraud_pipeline.model.checksums import ArtifactError
from fraud_pipeline.pipeline.steps import run_interval
from fraud_pipeline.registry import models, versions
from fraud_pipeline.registry.versions import set_up_database
from fraud_pipeline.serving import model_server
from tests.support import registry as registry_support
from tests.support.registry import tamper
from tests.support.servers import night_window, serve_app

COMMITTED = str(read_metadata(get_settings().artifacts_dir)["model_version"])
PROMOTED_THRESHOLD = 0.987  # only the promoted version's metadata says so


def promoted_copy(conn, tmp_path: Path, monkeypatch) -> Path:
    return registry_support.promoted_copy(
        conn, tmp_path, monkeypatch, "xgb-promoted", PROMOTED_THRESHOLD
    )


def test_the_champion_is_loaded_from_the_store_and_verified(clean_db, conn, tmp_path, monkeypatch):
    set_up_database(clean_db)  # the committed model becomes the first champion
    assert models.champion_model(conn).version == COMMITTED
    stored = promoted_copy(conn, tmp_path, monkeypatch)
    try:
        promoted = models.champion_model(conn)
        assert (promoted.version, promoted.threshold) == ("xgb-promoted", PROMOTED_THRESHOLD)
        versions.rollback(conn, by="test")
        assert models.champion_model(conn).version == COMMITTED
        versions.promote(conn, "xgb-promoted", "test", "served again")  # retired: promotable
        models.forget_models()
        tamper(stored / "preprocess.joblib")
        with pytest.raises(ArtifactError):
            models.champion_model(conn)  # never loaded unverified
    finally:
        get_settings.cache_clear()


def test_an_empty_registry_means_the_committed_artifacts(conn):
    assert versions.list_versions(conn) == []
    assert models.champion_model(conn).version == COMMITTED


@pytest.mark.clock
def test_after_a_promotion_the_steps_score_with_the_champions_artifacts(
    services, conn, tmp_path, monkeypatch
):
    """The stored threshold and the reasons' model are the promoted version's (served by the
    endpoint too: another served version stores nothing, tests/registry/test_one_version.py)."""
    stored = promoted_copy(conn, tmp_path, monkeypatch)
    served = serve_app(model_server.build_app(stored))
    monkeypatch.setenv("SAGEMAKER_ENDPOINT_URL", served.url)
    get_settings.cache_clear()
    try:
        _, end = night_window()
        start = end - pd.Timedelta(minutes=10)
        summary = run_interval(
            conn, start.to_pydatetime(), end.to_pydatetime(), run_id="after-promotion"
        )
        assert summary.loaded.loaded > 0
        with conn, conn.cursor() as cur:
            cur.execute("SELECT DISTINCT threshold FROM payments_scored")
            thresholds = {float(row[0]) for row in cur.fetchall()}
        assert thresholds == {PROMOTED_THRESHOLD}
    finally:
        served.stop()
        get_settings.cache_clear()


@pytest.mark.slow
def test_make_run_serves_the_champion_not_the_committed_model(
    clean_db, conn, tmp_path, monkeypatch, launch_stack
):
    """The model server starts on ARTIFACTS_DIR; a start after a promotion reloads the champion."""
    set_up_database(clean_db)
    promoted_copy(conn, tmp_path, monkeypatch)  # MODEL_STORE in the stack's environment too
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((1, len(load_model().feature_names)), dtype=np.float32))
    stack = launch_stack(
        tmp_path / "state", "--free-ports", "--no-backfill", "--only", "sagemaker-local"
    )
    try:
        state = stack.wait_for_state()
        response = requests.post(
            f"{state['urls']['model']}/invocations",
            data=buffer.getvalue(),
            headers={"Content-Type": "application/x-npy", "Accept": "text/csv"},
            timeout=30,
        )
        output = stack.stop(signal.SIGTERM)
    finally:
        get_settings.cache_clear()
    assert response.status_code == 200, response.text
    assert "xgb-promoted" in response.headers["x-amzn-sagemaker-custom-attributes"]
    assert f"the champion: model server {state['urls']['model']} now serves xgb-promoted" in output
