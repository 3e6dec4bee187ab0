"""The DAGs: integrity (cheap parse, shape, retries, docs) and real runs with `dag.test()`."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from fraud_pipeline import clock
from fraud_pipeline.config import REPO_ROOT
from fraud_pipeline.devstack import payments_api
from fraud_pipeline.devstack.airflow_local import local_aws_connection, postgres_connection
from fraud_pipeline.devstack.generate import payments_between
from fraud_pipeline.net import free_port
from fraud_pipeline.storage.db import connect, with_database
from tests.support.servers import serve_app

DAGS = REPO_ROOT / "airflow" / "dags"


@pytest.fixture(scope="session")
def airflow_env(tmp_path_factory) -> dict[str, str]:
    """An AIRFLOW_HOME with a migrated metadata database, once per session."""
    home = tmp_path_factory.mktemp("airflow_home")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
    }
    subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
        env=env,
        check=True,
        capture_output=True,
    )
    return env


def _python(code: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def test_dags_parse_with_the_designed_shape(airflow_env):
    out = _python(
        """
        from airflow.dag_processing.dagbag import DagBag
        bag = DagBag(dag_folder="%s")
        assert not bag.import_errors, bag.import_errors
        pipe, daily = bag.dags["fraud_pipeline"], bag.dags["fraud_daily_report"]
        order = ["extract", "validate", "transform", "score", "load", "alert"]
        assert [t.task_id for t in pipe.tasks] == order
        for upstream, downstream in zip(order, order[1:]):
            assert pipe.get_task(upstream).downstream_task_ids == {downstream}
        assert type(pipe.timetable).__name__ == "CronDataIntervalTimetable"
        assert pipe.timetable.summary == "* * * * *" and pipe.max_active_runs <= 2
        assert type(daily.timetable).__name__ == "CronTriggerTimetable" and "0 7 * * *" in daily.timetable.summary
        for dag in (pipe, daily):
            assert dag.tags and dag.doc_md
            assert all(t.retries >= 2 and t.doc_md for t in dag.tasks)
        assert [o.name for o in pipe.get_task("load").outlets] == ["payments_scored"]
        print("ok")
        """
        % DAGS,
        airflow_env,
    )
    assert out.strip().endswith("ok")


@pytest.mark.airflow
def test_a_real_dag_run_scores_loads_quarantines_and_alerts_once(airflow_env, services):
    # One night minute of generated payments at a high rate, plus two malformed rows.
    minute = pd.Timestamp(clock.day_start(clock.yesterday())) + pd.Timedelta(hours=2, minutes=30)
    generated = payments_api.generator_source(seed=11, rate_per_min=2_000)

    def with_bad_rows(start, end):
        rows = generated(start, end)
        bad = rows.head(2).copy()
        bad["trans_num"] = ["bad-amount", "bad-category"]
        bad.loc[bad.index[0], "amt"] = -1
        bad.loc[bad.index[1], "category"] = "<script>"
        return pd.concat([rows, bad], ignore_index=True)

    api = serve_app(payments_api.build_app(with_bad_rows))
    env = {
        **airflow_env,
        "PAYMENTS_API_URL": api.url,
        # Scoring goes through the `aws_default` connection's endpoint_url, not the setting.
        "AIRFLOW_CONN_AWS_DEFAULT": local_aws_connection(os.environ["SAGEMAKER_ENDPOINT_URL"]),
        "SAGEMAKER_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
        "SMTP_PORT": os.environ["SMTP_PORT"],
        # The tasks reach the database only through the `fraud_db` Airflow connection:
        # DATABASE_URL names a database that does not exist.
        "AIRFLOW_CONN_FRAUD_DB": postgres_connection(os.environ["DATABASE_URL"]),
        "DATABASE_URL": with_database(os.environ["DATABASE_URL"], "no_such_database"),
    }
    run = """
        from airflow.dag_processing.dagbag import DagBag
        import pendulum
        dag = DagBag(dag_folder="%s").dags["fraud_pipeline"]
        run = dag.test(logical_date=pendulum.parse("%s"))
        print("STATE", run.state)
        """ % (DAGS, (minute + pd.Timedelta(minutes=1)).tz_convert("UTC").isoformat())
    # A manual run at T covers the interval that ends at T: [minute, minute + 1 min).
    try:
        assert "STATE success" in _python(run, env)
        expected = payments_between(
            minute, minute + pd.Timedelta(minutes=1), seed=11, rate_per_min=2_000
        )
        conn = connect()
        with conn.cursor() as cur:
            cur.execute(
                "SELECT count(*), count(*) FILTER (WHERE is_fraud_pred), count(DISTINCT model_version) "
                "FROM payments_scored"
            )
            stored, frauds, versions = cur.fetchone()
            cur.execute("SELECT trans_num, reason FROM payments_quarantine ORDER BY trans_num")
            quarantined = cur.fetchall()
        assert stored == len(expected) > 500 and versions == 1
        assert [q[0] for q in quarantined] == ["bad-amount", "bad-category"]
        assert frauds > 0 and len(services.mail.messages()) == 1
        # The same interval again: nothing changes, nothing is sent.
        assert "STATE success" in _python(run, env)
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM payments_scored")
            assert cur.fetchone()[0] == stored
        assert len(services.mail.messages()) == 1
        conn.close()
    finally:
        api.stop()


def test_runs_missed_while_airflow_was_down_are_caught_up_by_the_next_run(airflow_env, services):
    """Issue #13: run N, no run for N+1..N+4 (scheduler down), run N+5 stores all six minutes."""
    minute = pd.Timestamp(clock.day_start(clock.yesterday())) + pd.Timedelta(hours=3)
    env = {
        **airflow_env,
        "PAYMENTS_API_URL": services.settings.payments_api_url,
        "AIRFLOW_CONN_AWS_DEFAULT": local_aws_connection(os.environ["SAGEMAKER_ENDPOINT_URL"]),
        "SMTP_PORT": os.environ["SMTP_PORT"],
        "AIRFLOW_CONN_FRAUD_DB": postgres_connection(os.environ["DATABASE_URL"]),
    }
    run = """
        from airflow.dag_processing.dagbag import DagBag
        import pendulum
        dag = DagBag(dag_folder="%s").dags["fraud_pipeline"]
        for logical_date in %r:
            print("STATE", dag.test(logical_date=pendulum.parse(logical_date)).state)
        """ % (
        DAGS,
        [(minute + pd.Timedelta(minutes=m)).tz_convert("UTC").isoformat() for m in (1, 6)],
    )
    assert _python(run, env).count("STATE success") == 2
    expected = payments_between(minute, minute + pd.Timedelta(minutes=6), seed=11, rate_per_min=40)
    conn = connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT trans_num FROM payments_scored")
            assert {row[0] for row in cur.fetchall()} == set(expected["trans_num"])
            cur.execute("SELECT loaded_until FROM pipeline_watermark")
            assert pd.Timestamp(cur.fetchone()[0]) == minute + pd.Timedelta(minutes=6)
    finally:
        conn.close()
