"""One model version per scored payment, end to end (issue 33): the features, the threshold, the
reasons and the probability of a stored payment all come from the same version. The registry's
champion is switched while the real model server goes on serving the old model (its reload did
not happen): no row is stored with the old model's probability and the new one's threshold or
features; the run fails, naming both versions, and the payments stay pending until the server
serves the champion. Real PostgreSQL, payments API and model server on loopback."""

from __future__ import annotations

import pandas as pd
import pytest

from fraud_pipeline.config import get_settings
from fraud_pipeline.model.artifacts import read_metadata
from fraud_pipeline.pipeline.steps import process_interval, receive, run_interval
from fraud_pipeline.registry import models
from fraud_pipeline.serving import model_server
from fraud_pipeline.serving.endpoint import EndpointClient, ModelVersionMismatch
from tests.support.registry import promoted_copy
from tests.support.servers import night_window, serve_app

COMMITTED = str(read_metadata(get_settings().artifacts_dir)["model_version"])
NEW_THRESHOLD = 0.987


def _count(conn, query: str) -> int:
    with conn, conn.cursor() as cur:
        cur.execute(query)
        return int(cur.fetchone()[0])


@pytest.mark.clock
def test_a_server_left_on_the_old_model_stores_nothing_mixed(services, conn, tmp_path, monkeypatch):
    # The registry switched, the server did not (a reload that failed, another stack's server).
    stored = promoted_copy(conn, tmp_path, monkeypatch, "xgb-new", NEW_THRESHOLD)
    _, end = night_window()
    start = end - pd.Timedelta(minutes=10)
    try:
        # The DAG's path: ingest, then score_and_load (new transformer, old server).
        with pytest.raises(ModelVersionMismatch, match=f"serves model {COMMITTED}.*xgb-new"):
            run_interval(conn, start.to_pydatetime(), end.to_pydatetime(), run_id="mixed")
        assert _count(conn, "SELECT count(*) FROM payments_scored") == 0
        pending = _count(conn, "SELECT count(*) FROM payments_inbox WHERE batch_id IS NULL")
        assert pending > 0  # waiting, not lost, and unclaimed: the next run takes them
        assert _count(conn, "SELECT count(*) FROM payments_inbox") == pending

        # The back-fill's path: the same check, before anything is stored.
        model = models.champion_model(conn)
        client = EndpointClient.from_settings(get_settings())
        later = (end, end + pd.Timedelta(minutes=10))
        received = receive(*(t.to_pydatetime() for t in later), get_settings())
        with pytest.raises(ModelVersionMismatch, match="xgb-new"):
            process_interval(
                conn,
                *later,
                run_id="mixed-backfill",
                model=model,
                client=client,
                received=received,
                shadow=False,
            )
        assert _count(conn, "SELECT count(*) FROM payments_scored") == 0
        pending = _count(conn, "SELECT count(*) FROM payments_inbox WHERE batch_id IS NULL")
        assert pending > received.fetched // 2  # both windows wait, unclaimed

        # Once the endpoint serves the champion, the next run stores every waiting payment
        # with the new model's probability, threshold and version.
        served = serve_app(model_server.build_app(stored))
        monkeypatch.setenv("SAGEMAKER_ENDPOINT_URL", served.url)
        get_settings.cache_clear()
        try:
            summary = run_interval(
                conn, start.to_pydatetime(), end.to_pydatetime(), run_id="next", shadow=False
            )
        finally:
            served.stop()
        assert summary.loaded.loaded == pending
        with conn, conn.cursor() as cur:
            cur.execute("SELECT DISTINCT model_version, threshold FROM payments_scored")
            assert cur.fetchall() == [("xgb-new", NEW_THRESHOLD)]
        assert _count(conn, "SELECT count(*) FROM payments_inbox") == 0
    finally:
        get_settings.cache_clear()
