"""Shadow scoring (issue 17): while a challenger is registered, every payment a run stores is
also scored by it, beside the champion, off the champion's path; a broken challenger never
fails a run. Real PostgreSQL, payments API, model server, SMTP and Airflow `dag.test()`."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg2.extensions
import pytest

from fraud_devstack.stack.airflow_local import local_aws_connection, postgres_connection
from fraud_devstack.stack.generate import payments_between
from fraud_pipeline import clock
from fraud_pipeline.model.artifacts import load_model
from fraud_pipeline.pipeline.steps import process_interval, run_interval
from fraud_pipeline.registry import versions
from fraud_pipeline.registry.store import LocalStore
from fraud_pipeline.serving.endpoint import EndpointClient
from tests.support.airflow_runs import dag_test, run_python
from tests.support.cards import stored_id
from tests.support.registry import model_version_copy, tamper
from tests.support.servers import night_window


def register(conn: psycopg2.extensions.connection, tmp_path: Path, version: str) -> Path:
    """A copy of the committed model registered as challenger `version`; its stored folder."""
    store = LocalStore(tmp_path / "store")
    registered = versions.register(conn, store, model_version_copy(tmp_path / version, version))
    return Path(registered.location)


def pairs(conn: psycopg2.extensions.connection) -> pd.DataFrame:
    """Every stored payment with its shadow score (NaN where none), by trans_num."""
    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT p.trans_num, p.fraud_probability, p.is_fraud_pred, s.model_version, "
            "s.fraud_probability, s.is_fraud_pred, s.threshold FROM payments_scored p "
            "LEFT JOIN shadow_scores s ON s.trans_num = p.trans_num ORDER BY p.trans_num"
        )
        rows = cur.fetchall()
    columns = ["trans_num", "champion", "champion_flag", "version", "challenger", "flag", "t"]
    return pd.DataFrame(rows, columns=columns)


def shadow_count(conn: psycopg2.extensions.connection) -> int:
    with conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM shadow_scores")
        return int(cur.fetchone()[0])


def window(minutes: int, hours_back: float = 0.0) -> tuple[pd.Timestamp, pd.Timestamp]:
    _, end = night_window()
    end = end - pd.Timedelta(hours=hours_back)
    return end - pd.Timedelta(minutes=minutes), end


@pytest.mark.clock
def test_without_a_challenger_nothing_is_shadowed(services, conn):
    start, end = window(10)
    summary = run_interval(conn, start.to_pydatetime(), end.to_pydatetime(), run_id="r1")
    assert summary.loaded.loaded > 0
    assert summary.shadow == {"challenger": None, "shadowed": 0}
    assert shadow_count(conn) == 0


@pytest.mark.clock
def test_every_stored_payment_gets_the_challengers_score_once(services, conn, tmp_path):
    """The challenger is a copy of the champion: the same probabilities, to the float."""
    register(conn, tmp_path, "xgb-shadow")
    start, end = window(10)
    summary = run_interval(conn, start.to_pydatetime(), end.to_pydatetime(), run_id="r1")
    stored = pairs(conn)
    assert len(stored) == summary.loaded.loaded == summary.shadowed > 100
    assert set(stored["version"]) == {"xgb-shadow"}
    np.testing.assert_allclose(stored["challenger"], stored["champion"], atol=1e-6)
    assert (stored["flag"] == stored["champion_flag"]).all()
    assert set(stored["t"]) == {load_model().threshold}

    again = run_interval(conn, start.to_pydatetime(), end.to_pydatetime(), run_id="r1")
    assert again.shadowed == 0
    assert pairs(conn).equals(stored)  # a re-run neither doubles nor changes a shadow score

    # The back-fill path: each stored chunk shadowed too.
    earlier = window(20, hours_back=1)
    client = EndpointClient.from_settings(services.settings)
    chunk = process_interval(
        conn, *(t.to_pydatetime() for t in earlier), run_id="bf", model=load_model(), client=client
    )
    assert chunk.shadowed == chunk.loaded.loaded > 100
    both = pairs(conn)
    assert len(both) == len(stored) + chunk.loaded.loaded and both["version"].notna().all()


@pytest.mark.clock
def test_a_tampered_challenger_never_fails_the_champions_run(services, conn, tmp_path, caplog):
    stored = register(conn, tmp_path, "xgb-tampered")
    tamper(stored / "model.ubj")
    start, end = window(30)
    summary = run_interval(conn, start.to_pydatetime(), end.to_pydatetime(), run_id="r1")
    expected = payments_between(start, end, seed=11, rate_per_min=40)
    assert summary.loaded.loaded == len(expected) == len(pairs(conn))
    assert summary.alerts["frauds_alerted"] > 0  # the champion's alerts went out
    assert summary.shadow["challenger"] == "xgb-tampered"
    assert "SHA-256" in summary.shadow["error"]
    assert shadow_count(conn) == 0
    assert "payments left unshadowed" in caplog.text

    # The back-fill goes on chunk after chunk, every payment stored, none shadowed.
    client = EndpointClient.from_settings(services.settings)
    for hours_back in (1, 2):
        earlier = window(10, hours_back=hours_back)
        chunk = process_interval(
            conn,
            *(t.to_pydatetime() for t in earlier),
            run_id="bf",
            model=load_model(),
            client=client,
        )
        assert chunk.loaded.loaded > 100 and chunk.shadowed == 0
    assert shadow_count(conn) == 0 and len(pairs(conn)) > len(expected)


@pytest.mark.airflow
@pytest.mark.clock
def test_dag_runs_shadow_every_payment_and_survive_a_broken_challenger(
    airflow_env, services, conn, tmp_path
):
    """A tampered challenger: the run succeeds, nothing shadowed. A good one registered after
    it (the latest challenger is the one shadowed): every payment of its run shadowed, once."""
    minute = pd.Timestamp(clock.day_start(clock.yesterday())) + pd.Timedelta(hours=2, minutes=30)
    env = {
        **airflow_env,
        "PAYMENTS_API_URL": services.settings.payments_api_url,
        "AIRFLOW_CONN_AWS_DEFAULT": local_aws_connection(os.environ["SAGEMAKER_ENDPOINT_URL"]),
        "SMTP_PORT": os.environ["SMTP_PORT"],
        "ALERT_MAX_AGE_MIN": os.environ["ALERT_MAX_AGE_MIN"],
        "AIRFLOW_CONN_FRAUD_DB": postgres_connection(os.environ["DATABASE_URL"]),
        "MODEL_STORE": str(tmp_path / "store"),
    }

    def at(minutes: int) -> str:
        return (minute + pd.Timedelta(minutes=minutes)).tz_convert("UTC").isoformat()

    def payments_of(minutes: int) -> set[str]:
        first = minute + pd.Timedelta(minutes=minutes - 1)
        rows = payments_between(first, first + pd.Timedelta(minutes=1), seed=11, rate_per_min=40)
        return set(rows["trans_num"].map(stored_id))  # as extract stores them

    tamper(register(conn, tmp_path, "xgb-dag-tampered") / "preprocess.joblib")
    assert "STATE success" in run_python(dag_test("fraud_pipeline", [at(1)]), env)
    first = pairs(conn)
    assert set(first["trans_num"]) == payments_of(1) and first["version"].isna().all()

    register(conn, tmp_path, "xgb-dag")
    out = run_python(dag_test("fraud_pipeline", [at(2), at(2)]), env)
    assert out.count("STATE success") == 2
    stored = pairs(conn)
    second = stored[stored["trans_num"].isin(payments_of(2))]
    assert len(second) == len(payments_of(2)) > 10
    assert set(second["version"]) == {"xgb-dag"}  # every payment of the run, once
    np.testing.assert_allclose(second["challenger"], second["champion"], atol=1e-6)
    assert stored[~stored["trans_num"].isin(payments_of(2))]["version"].isna().all()
    assert shadow_count(conn) == len(second)


def test_migration_020_runs_again_without_error_or_change(conn):
    """Applied by `db migrate` already: running its file twice more changes nothing."""
    from fraud_pipeline.storage.migrate import discover

    (migration,) = [m for m in discover() if m.version == 20]
    columns_query = (
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = 'shadow_scores' ORDER BY ordinal_position"
    )
    with conn.cursor() as cur:
        cur.execute(columns_query)
        before = cur.fetchall()
        cur.execute(migration.sql)
        cur.execute(migration.sql)
        cur.execute(columns_query)
        assert cur.fetchall() == before and len(before) == 6
        cur.execute(
            "SELECT has_function_privilege('fraud_report_reader', "
            "'fraud_shadow_comparison(date, date)', 'EXECUTE'), "
            "has_table_privilege('fraud_report_reader', 'shadow_scores', 'SELECT')"
        )
        assert cur.fetchone() == (True, False)  # the report reads the function, not the table
    conn.rollback()
