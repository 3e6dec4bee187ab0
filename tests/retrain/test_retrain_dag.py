"""fraud_retrain under `dag.test()` (issue 17's "Done when"), on a database seeded with recent
labelled payments (real rows of the public Kaggle files) and a real local model server started
with `serve-model --reload`: a challenger is registered with both models' figures on the same
latest days; with a gate it cannot pass it stays a challenger with the reason; with a gate it
passes it becomes champion, the server serves it and the pipeline's next scored rows carry its
version; `fraud-pipeline model rollback` brings the previous champion back, on the rows too, and
a re-run of a decided run changes nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import requests

from fraud_devstack.stack.airflow_local import postgres_connection
from fraud_pipeline import clock
from fraud_pipeline.cli import main
from fraud_pipeline.config import get_settings
from fraud_pipeline.model.artifacts import read_metadata
from fraud_pipeline.net import free_port, wait_for_port
from fraud_pipeline.registry import versions
from fraud_pipeline.registry.versions import set_up_database
from fraud_pipeline.storage.upsert import upsert_scored
from tests.support.airflow_runs import DAGS, run_python
from tests.support.factories import public_sample, scored_payments

NOW = "2026-11-23T03:00:00+01:00"  # a Monday, 03:00 in Paris: the DAG's scheduled time
WINDOW_DAYS, HOLDOUT_DAYS, PAYMENTS = 14, 4, 3_000


def test_the_dag_is_weekly_thin_and_documented(airflow_env):
    out = run_python(
        """
        from airflow.dag_processing.dagbag import DagBag
        bag = DagBag(dag_folder="%s")
        assert not bag.import_errors, bag.import_errors
        dag = bag.dags["fraud_retrain"]
        order = ["train_challenger", "judge", "serve_champion"]
        assert [t.task_id for t in dag.tasks] == order
        for upstream, downstream in zip(order, order[1:]):
            assert dag.get_task(upstream).downstream_task_ids == {downstream}
        assert type(dag.timetable).__name__ == "CronTriggerTimetable"
        assert "0 3 * * 1" in dag.timetable.summary and dag.max_active_runs == 1
        assert not dag.catchup and "window_days" in dag.params
        assert dag.is_paused_upon_creation  # never a whole retraining at a first start
        assert dag.tags and dag.doc_md and all(t.retries >= 2 and t.doc_md for t in dag.tasks)
        print("ok")
        """
        % DAGS,
        airflow_env,
    )
    assert out.strip().endswith("ok")


@pytest.mark.airflow
def test_a_run_with_nothing_to_retrain_on_fails_at_once_saying_why(airflow_env, clean_db, tmp_path):
    env = {
        **airflow_env,
        "DATABASE_URL": clean_db,
        "AIRFLOW_CONN_FRAUD_DB": postgres_connection(clean_db),
        "MODEL_STORE": str(tmp_path / "store"),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
    }
    out = run_python(
        """
        from airflow.dag_processing.dagbag import DagBag
        import pendulum
        dag = DagBag(dag_folder="%s").dags["fraud_retrain"]
        run = dag.test(logical_date=pendulum.parse("%s"))
        print("STATE", run.state)
        for ti in run.get_task_instances():
            print("TASK", ti.task_id, ti.state, ti.try_number)
        """
        % (DAGS, NOW),
        env,
    )
    assert "STATE failed" in out, out[-3000:]
    assert "TASK train_challenger failed 1" in out  # no retry: none would find a champion
    assert "TASK judge upstream_failed" in out
    assert "no champion to compare a challenger with" in out
    assert not (tmp_path / "store").exists()


@pytest.fixture
def reload_server(tmp_path: Path) -> Iterator[str]:
    """`fraud-pipeline serve-model --reload` on the committed artifacts, as `make run` starts it."""
    port = free_port()
    log = tmp_path / "model-server.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("fraud-pipeline")),
                "serve-model",
                "--reload",
                "--port",
                str(port),
                "--model-dir",
                str(get_settings().artifacts_dir),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port("127.0.0.1", port, timeout=60)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


def _served_version(url: str) -> str:
    """The version the server names on an answer (as on every scored payment)."""
    width = len(read_metadata(get_settings().artifacts_dir)["feature_names"])
    response = requests.post(
        f"{url}/invocations",
        data=",".join(["0"] * width),
        headers={"Content-Type": "text/csv", "Accept": "text/csv"},
        timeout=30,
    )
    response.raise_for_status()
    return response.headers["x-amzn-sagemaker-custom-attributes"].removeprefix("model_version=")


def _holdout_counts(conn, end: datetime) -> tuple[int, int, int]:
    """Independently of the code under test: payments and frauds of the holdout, and those on
    cards without any payment in the part trained on."""
    start, holdout = end - timedelta(days=WINDOW_DAYS), end - timedelta(days=HOLDOUT_DAYS)
    with conn.cursor() as cur:
        cur.execute(
            """SELECT count(*), count(*) FILTER (WHERE is_fraud = 1),
                      count(*) FILTER (WHERE NOT EXISTS (
                          SELECT 1 FROM payments_scored l WHERE l.card_token = h.card_token
                          AND l.trans_time >= %s AND l.trans_time < %s))
               FROM payments_scored h WHERE trans_time >= %s AND trans_time < %s""",
            (start, holdout, holdout, end),
        )
        return cur.fetchone()


def _scored_versions(conn, start: datetime, end: datetime) -> dict[str, int]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT model_version, count(*) FROM payments_scored"
            " WHERE trans_time >= %s AND trans_time < %s GROUP BY 1",
            (start, end),
        )
        return dict(cur.fetchall())


@pytest.mark.slow
@pytest.mark.airflow
@pytest.mark.timeout(1500)
def test_retrain_keeps_a_challenger_below_the_gate_promotes_past_it_and_rolls_back(
    airflow_env, services, conn, clean_db, reload_server, tmp_path, monkeypatch, capsys
):
    set_up_database(clean_db)  # the committed model: the first champion
    committed = versions.champion(conn)
    assert committed is not None and _served_version(reload_server) == committed.version
    store = tmp_path / "store"
    with clock.frozen(NOW) as now:
        rows = public_sample().sample(PAYMENTS, random_state=5)
        # The 15 days before now, up to an hour before it: the pipeline's runs below come after.
        step = ((WINDOW_DAYS + 1) * 86_400 - 3_600) / PAYMENTS
        upsert_scored(
            conn,
            scored_payments(
                PAYMENTS, start=now - timedelta(days=WINDOW_DAYS + 1), step_s=step, rows=rows
            ),
        )
        env = {
            **airflow_env,
            clock.FRAUD_NOW: os.environ[clock.FRAUD_NOW],
            "DATABASE_URL": clean_db,
            "AIRFLOW_CONN_FRAUD_DB": postgres_connection(clean_db),
            "MODEL_STORE": str(store),
            "SAGEMAKER_ENDPOINT_URL": reload_server,
            "RETRAIN_WINDOW_DAYS": str(WINDOW_DAYS),
            "RETRAIN_HOLDOUT_DAYS": str(HOLDOUT_DAYS),
            "RETRAIN_SAMPLE_ROWS": "20000",  # a quick model: the files' rows, sampled
            "RETRAIN_MIN_EVAL_FRAUDS": "20",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        }

        def run_at(logical: datetime, **gate: str) -> str:
            out = run_python(
                """
                from airflow.dag_processing.dagbag import DagBag
                import pendulum
                dag = DagBag(dag_folder="%s").dags["fraud_retrain"]
                print("STATE", dag.test(logical_date=pendulum.parse("%s")).state)
                """
                % (DAGS, logical.astimezone(clock.business_tz()).isoformat()),
                {**env, **gate},
                timeout_s=900,
            )
            assert "STATE success" in out, out[-3000:]
            return out

        # Yesterday, with a gate no model can pass.
        first_end = now - timedelta(days=1)
        run_at(first_end, RETRAIN_MIN_PR_AUC_GAIN="1.0", RETRAIN_TOLERANCE="0")
        listed = {v.version: v for v in versions.list_versions(conn)}
        assert len(listed) == 2
        first = next(v for v in listed.values() if v.version != committed.version)
        assert first.status == "challenger" and first.promoted_at is None
        assert first.reason and first.reason.startswith("stays challenger: PR-AUC gain")
        assert "below the required +1.0000" in first.reason
        assert first.training_data_to == first_end - timedelta(days=HOLDOUT_DAYS)
        measured, frauds, on_new_cards = _holdout_counts(conn, first_end)
        assert frauds >= 20 and 0 < on_new_cards < measured
        evaluations = first.metrics["evaluations"]
        assert set(evaluations) == {committed.version, first.version}
        assert evaluations[committed.version]["role"] == "champion"
        for figures in evaluations.values():  # the same payments for both
            assert (figures["all"]["n"], figures["all"]["n_fraud"]) == (measured, frauds)
            assert figures["new_cards"]["n"] == on_new_cards
            assert 0 < figures["all"]["pr_auc"] <= 1
        assert first.metrics["gate"]["passed"] is False
        assert first.metrics["gate"]["min_pr_auc_gain"] == 1.0
        assert first.metrics["gate"]["reason"] == first.reason
        assert "validation_new_customers" in first.metrics  # the training figures stay
        assert versions.champion(conn).version == committed.version
        assert _served_version(reload_server) == committed.version

        # Today, with a gate any measured challenger passes: the new one is served.
        run_at(now, RETRAIN_MIN_PR_AUC_GAIN="-1", RETRAIN_TOLERANCE="1")
        second = versions.champion(conn)
        assert second is not None and second.version not in (committed.version, first.version)
        assert second.promoted_by == "fraud_retrain"
        assert second.reason and second.reason.startswith("passed the gate: PR-AUC")
        assert second.metrics["gate"]["passed"] is True
        assert set(second.metrics["evaluations"]) == {committed.version, second.version}
        assert versions.get_version(conn, first.version).status == "challenger"
        assert versions.get_version(conn, committed.version).status == "retired"
        assert _served_version(reload_server) == second.version

        # The pipeline's next payments are scored by it, then by the committed model again once
        # `fraud-pipeline model rollback` has put it back.
        monkeypatch.setenv("SAGEMAKER_ENDPOINT_URL", reload_server)
        monkeypatch.setenv("MODEL_STORE", str(store))
        get_settings.cache_clear()
        minutes = [now - timedelta(minutes=m) for m in (10, 5, 0)]

        def run_interval(start: datetime, end: datetime) -> dict[str, int]:
            args = ["--start", start.isoformat(), "--end", end.isoformat(), "--no-alerts"]
            assert main(["run-interval", *args]) == 0
            return _scored_versions(conn, start, end)

        after_promotion = run_interval(minutes[0], minutes[1])
        assert list(after_promotion) == [second.version] and after_promotion[second.version] > 0
        assert main(["model", "rollback", "--by", "oncall"]) == 0
        assert f"now serves {committed.version}" in capsys.readouterr().out
        assert versions.champion(conn).version == committed.version
        after_rollback = run_interval(minutes[1], minutes[2])
        assert list(after_rollback) == [committed.version]

        # Today's run again (a retry, a manual re-run): the same window trains the same model,
        # found registered; the decision already taken stands, the rolled-back model stays out.
        before = versions.list_versions(conn)
        run_at(now, RETRAIN_MIN_PR_AUC_GAIN="-1", RETRAIN_TOLERANCE="1")
        assert versions.list_versions(conn) == before
        assert _served_version(reload_server) == committed.version
