"""The DAGs: integrity (cheap parse, shape, retries, docs) and real runs with `dag.test()`."""

from __future__ import annotations

import json
import logging
import os
import shutil
from datetime import date, timedelta

import pandas as pd
import pytest

from fraud_devstack.stack import payments_api
from fraud_devstack.stack.airflow_local import (
    DAG_IDS,
    local_aws_connection,
    postgres_connection,
)
from fraud_devstack.stack.generate import payments_between
from fraud_pipeline import clock
from fraud_pipeline.config import get_settings
from fraud_pipeline.model.artifacts import record_artifact
from fraud_pipeline.model.features import feature_frame
from fraud_pipeline.model.reference import REFERENCE_FILE, build_reference, to_bytes
from fraud_pipeline.net import free_port
from fraud_pipeline.pipeline.steps import run_interval
from fraud_pipeline.storage import watermark
from fraud_pipeline.storage.db import connect, with_database
from fraud_pipeline.storage.upsert import upsert_scored
from tests.support.airflow_runs import DAGS, dag_test, run_python
from tests.support.cards import database_text, leaks, luhn_number, stored_id
from tests.support.factories import real_rows, scored_payments
from tests.support.hostile_api import hostile_api
from tests.support.servers import serve_app


def test_dags_parse_with_the_designed_shape(airflow_env):
    out = run_python(
        """
        from airflow.dag_processing.dagbag import DagBag
        bag = DagBag(dag_folder="%s")
        assert not bag.import_errors, bag.import_errors
        pipe, daily = bag.dags["fraud_pipeline"], bag.dags["fraud_daily_report"]
        # One path: ingest -> score_and_load -> alert, the challenger's shadow scoring beside
        # alert, off the champion's path.
        assert [t.task_id for t in pipe.tasks] == ["ingest", "score_and_load", "alert", "shadow_score"]
        assert pipe.get_task("ingest").downstream_task_ids == {"score_and_load"}
        assert pipe.get_task("score_and_load").downstream_task_ids == {"alert", "shadow_score"}
        assert not pipe.get_task("alert").downstream_task_ids
        assert not pipe.get_task("shadow_score").downstream_task_ids
        assert type(pipe.timetable).__name__ == "CronDataIntervalTimetable"
        assert pipe.timetable.summary == "* * * * *" and pipe.max_active_runs <= 2
        assert type(daily.timetable).__name__ == "CronTriggerTimetable" and "0 7 * * *" in daily.timetable.summary
        monitor = bag.dags["fraud_model_monitor"]
        assert [t.task_id for t in monitor.tasks] == ["day_loaded", "check_health"]
        assert "30 6 * * *" in monitor.timetable.summary and monitor.max_active_runs == 1
        for dag in (daily, monitor):  # sensors free their slot: a stop never waits on a poke
            assert dag.get_task("day_loaded").mode == "reschedule"
        assert sorted(bag.dags) == sorted(%r)
        for dag in (pipe, daily, monitor):
            assert dag.tags and dag.doc_md
            assert all(t.retries >= 2 and t.doc_md for t in dag.tasks)
        assert [o.name for o in pipe.get_task("score_and_load").outlets] == ["payments_scored"]
        print("ok")
        """
        % (DAGS, list(DAG_IDS)),
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
        "ALERT_MAX_AGE_MIN": os.environ["ALERT_MAX_AGE_MIN"],  # last night's run, alerted as live
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
        assert "STATE success" in run_python(run, env)
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
        with conn.cursor() as cur:  # no challenger registered: the shadow task did nothing
            cur.execute("SELECT count(*) FROM shadow_scores")
            assert cur.fetchone()[0] == 0
        assert [q[0] for q in quarantined] == ["bad-amount", "bad-category"]
        assert frauds > 0 and len(services.mail.messages()) == 1
        # The same interval again: nothing changes, nothing is sent.
        assert "STATE success" in run_python(run, env)
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
        "ALERT_MAX_AGE_MIN": os.environ["ALERT_MAX_AGE_MIN"],  # last night's run, alerted as live
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
    assert run_python(run, env).count("STATE success") == 2
    expected = payments_between(minute, minute + pd.Timedelta(minutes=6), seed=11, rate_per_min=40)
    conn = connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT trans_num FROM payments_scored")
            stored = {row[0] for row in cur.fetchall()}
            assert stored == set(expected["trans_num"].map(stored_id))  # as extract stores
            cur.execute("SELECT loaded_until FROM pipeline_watermark")
            assert pd.Timestamp(cur.fetchone()[0]) == minute + pd.Timedelta(minutes=6)
    finally:
        conn.close()


POISON_START = pd.Timestamp("2026-03-01 12:00", tz="UTC")


def poison_items(card: str) -> tuple[list, dict, dict[str, pd.Timestamp]]:
    """180 real payments, three a minute for an hour from POISON_START, with a list in a text
    field (minute 2), an unknown field holding a card number (minute 10) and two non-objects
    (minute 30): (the API's items, the poison payment, each good payment's id and instant)."""
    records = json.loads(real_rows().head(180).to_json(orient="records"))
    items = []
    for i, record in enumerate(records):  # three a minute
        when = POISON_START + pd.Timedelta(seconds=20 * i + 5)
        record["trans_date_trans_time"] = when.isoformat()
        items.append((when, record))
    poison = items[7][1]
    poison["street"] = ["a", ["b"]]
    items[31][1]["card_number"] = card  # dropped at extract, the payment stored
    extra = enumerate([42, None])
    items.extend((POISON_START + pd.Timedelta(minutes=30, seconds=j), v) for j, v in extra)
    good = {  # each id as extract stores it
        stored_id(r["trans_num"]): w for w, r in items if isinstance(r, dict) and r is not poison
    }
    return items, poison, good


def assert_poison_outcome(
    conn, minutes: int, poison: dict, good: dict[str, pd.Timestamp], card: str, text: str
) -> None:
    """After runs over the first `minutes`: every good payment of them stored, each bad item
    quarantined once, nothing left behind to block a later run, the high-water mark at the
    last minute, no card number in the database, `text` (logs) or the mail."""
    end = POISON_START + pd.Timedelta(minutes=minutes)
    with conn.cursor() as cur:
        cur.execute("SELECT trans_num FROM payments_scored")
        assert {row[0] for row in cur.fetchall()} == {t for t, w in good.items() if w < end}
        cur.execute("SELECT trans_num, reason FROM payments_quarantine ORDER BY id")
        quarantined = cur.fetchall()
        cur.execute(
            "SELECT (SELECT count(*) FROM payments_landing) + (SELECT count(*) FROM payments_inbox)"
        )
        assert cur.fetchone()[0] == 0  # nothing left behind to block a later run
        cur.execute("SELECT loaded_until FROM pipeline_watermark")
        assert pd.Timestamp(cur.fetchone()[0]) == end
    assert quarantined[0] == (poison["trans_num"], "street: expected text, got list")
    assert sorted(q[1] for q in quarantined[1:]) == [
        "payment is not an object: int",
        "payment is not an object: null",
    ]
    assert len(quarantined) == 3
    assert not leaks([card], database_text(conn.dsn) + text)


@pytest.mark.airflow
def test_a_poison_payment_through_real_dag_runs(airflow_env, services):
    """Issue #13, through Airflow: the poison's minute and the next, then runs that catch up the
    minutes with the card number and the non-objects: every run green, every good payment
    stored, each bad item quarantined once, no card number anywhere. (Minute after minute for
    an hour, through the same steps: the test below.)"""
    card = luhn_number("4539")
    items, poison, good = poison_items(card)
    minutes = [1, 2, 3, 4, 11, 31, 32]  # 3: the poison's; 11 and 31 catch up the others
    logical_dates = [(POISON_START + pd.Timedelta(minutes=m)).isoformat() for m in minutes]
    with hostile_api(items) as url:
        env = {
            **airflow_env,
            "PAYMENTS_API_URL": url,
            "AIRFLOW_CONN_AWS_DEFAULT": local_aws_connection(os.environ["SAGEMAKER_ENDPOINT_URL"]),
            "SMTP_PORT": os.environ["SMTP_PORT"],
            "AIRFLOW_CONN_FRAUD_DB": postgres_connection(os.environ["DATABASE_URL"]),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        }
        out = run_python(dag_test("fraud_pipeline", logical_dates), env)
    assert out.count("STATE success") == len(minutes), out[-3000:]
    conn = connect()
    try:
        mails = " ".join(m.as_string() for m in services.mail.messages())
        assert_poison_outcome(conn, minutes[-1], poison, good, card, out + mails)
    finally:
        conn.close()


@pytest.mark.slow
def test_a_poison_payment_through_sixty_per_minute_runs_of_the_dags_steps(
    services, caplog, monkeypatch
):
    """Issue #13, minute after minute for an hour: the DAG's steps (`run_interval` with the
    DAG's catch-up), one run a minute, in this process. Every run succeeds, every good payment
    is stored, each bad item quarantined once (never again by a later run), no card number in
    the database, the logs or the mail."""
    card = luhn_number("4539")
    items, poison, good = poison_items(card)
    caplog.set_level(logging.INFO)
    with hostile_api(items) as url:
        monkeypatch.setenv("PAYMENTS_API_URL", url)
        get_settings.cache_clear()
        settings = get_settings()
        conn = connect()
        try:
            for m in range(60):
                start = POISON_START + pd.Timedelta(minutes=m)
                run_interval(
                    conn,
                    start.to_pydatetime(),
                    (start + pd.Timedelta(minutes=1)).to_pydatetime(),
                    run_id=f"scheduled__{m}",
                    settings=settings,
                    catch_up=True,
                )
            mails = " ".join(m.as_string() for m in services.mail.messages())
            assert_poison_outcome(conn, 60, poison, good, card, caplog.text + mails)
        finally:
            conn.close()
            get_settings.cache_clear()


@pytest.mark.airflow
@pytest.mark.clock
def test_the_morning_summary_waits_until_its_day_is_loaded(airflow_env, services):
    """Issue #15: the 07:00 run fired on a first start (yesterday still back-filling) sends
    nothing; once the gap-free range covers yesterday, it sends the day's one summary."""
    yesterday = clock.yesterday()
    first, _ = clock.day_bounds(yesterday)
    seven = pd.Timestamp(clock.day_start(clock.today())) + pd.Timedelta(hours=7)
    env = {
        **airflow_env,
        "SMTP_PORT": os.environ["SMTP_PORT"],
        "AIRFLOW_CONN_FRAUD_DB": postgres_connection(os.environ["DATABASE_URL"]),
        "SUMMARY_WAIT_MAX_S": "2",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
    }
    run = """
        from airflow.dag_processing.dagbag import DagBag
        import pendulum
        dag = DagBag(dag_folder="%s").dags["fraud_daily_report"]
        print("STATE", dag.test(logical_date=pendulum.parse("%s")).state)
        """ % (DAGS, seven.tz_convert("UTC").isoformat())
    conn = connect()
    try:
        with conn, conn.cursor() as cur:  # the first live run: today only, yesterday not yet
            watermark.advance(cur, clock.now() - timedelta(minutes=1), clock.now())
        out = run_python(run, env)
        assert "STATE failed" in out and "waits: payments before" in out, out[-3000:]
        assert services.mail.messages() == []
        with conn, conn.cursor() as cur:  # the back-fill of yesterday reached the live runs
            watermark.advance(cur, first, clock.now())
        assert "STATE success" in run_python(run, env)
        (mail,) = services.mail.messages()
        assert f"Morning report {yesterday.isoformat()}" in mail["Subject"]
    finally:
        conn.close()


@pytest.mark.airflow
def test_the_model_monitor_warns_once_when_the_amounts_drift(airflow_env, services, tmp_path):
    """Issue #16: a day whose amounts are all tripled (a currency mix-up upstream) stores a PSI
    of the amount above MONITOR_PSI_MAX and sends one warning; a day like the reference stores
    figures and sends none; re-running either day sends nothing more."""
    normal, shifted = date(2026, 11, 20), date(2026, 10, 10)  # 41 days apart: no shared history

    def day_of(day: date, seed: int) -> pd.DataFrame:
        return scored_payments(
            1_000, start=clock.day_start(day) + timedelta(hours=1), seed=seed, step_s=80
        )

    # The reference: the same kind of day (its features, its scores), stored with a copy of the
    # model through the same code path as `fraud-pipeline monitor build-reference`.
    artifacts = tmp_path / "artifacts"
    shutil.copytree(services.settings.artifacts_dir, artifacts)
    baseline = day_of(normal, seed=1)
    features = json.loads((artifacts / REFERENCE_FILE).read_text())["features"]
    reference = build_reference(
        feature_frame(baseline), baseline["fraud_probability"].to_numpy(), 0.5, features, "test"
    )
    record_artifact(artifacts, REFERENCE_FILE, to_bytes(reference))

    drifted = day_of(shifted, seed=3)
    drifted["amt"] = drifted["amt"] * 3
    conn = connect()
    upsert_scored(conn, day_of(normal, seed=2))
    upsert_scored(conn, drifted)
    with conn, conn.cursor() as cur:  # both days fully loaded, with the late-payment bound
        bound = timedelta(minutes=get_settings().late_payment_lookback_min)  # past their ends
        watermark.advance(
            cur, clock.day_start(shifted), clock.day_start(normal + timedelta(days=1)) + bound
        )
    env = {
        **airflow_env,
        "SMTP_PORT": os.environ["SMTP_PORT"],
        "AIRFLOW_CONN_FRAUD_DB": postgres_connection(os.environ["DATABASE_URL"]),
        "ARTIFACTS_DIR": str(artifacts),
        "SUMMARY_WAIT_MAX_S": "2",
    }

    def run_for(day: date) -> None:
        logical = pd.Timestamp(clock.day_start(day + timedelta(days=1))) + pd.Timedelta(hours=6.5)
        out = run_python(
            """
            from airflow.dag_processing.dagbag import DagBag
            import pendulum
            dag = DagBag(dag_folder="%s").dags["fraud_model_monitor"]
            print("STATE", dag.test(logical_date=pendulum.parse("%s")).state)
            """
            % (DAGS, logical.tz_convert("UTC").isoformat()),
            env,
        )
        assert "STATE success" in out, out[-3000:]

    def health(day: date) -> dict[str, tuple[float | None, float | None, bool]]:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT metric, value, threshold, breached FROM model_health WHERE day = %s",
                (day,),
            )
            return {m: (v, t, b) for m, v, t, b in cur.fetchall()}

    try:
        run_for(normal)
        run_for(normal)
        figures = health(normal)
        assert set(figures) >= {
            "psi_score",
            "psi_amt",
            "flag_share",
            "alert_volume",
            "quarantine_share",
            "confirmed_precision",
            "review_count",
        }
        assert {f"psi_{name}" for name in features} <= set(figures)
        assert figures["psi_amt"][0] == pytest.approx(0.0, abs=1e-9)  # the reference's rows
        assert figures["psi_score"][0] < 0.1 and figures["psi_amt"][1] == 0.2
        assert not any(breached for _, _, breached in figures.values())
        assert services.mail.messages() == []

        run_for(shifted)
        run_for(shifted)
        drift = health(shifted)
        assert drift["psi_amt"][0] > 0.2 and drift["psi_amt"][2]
        assert drift["psi_score"][0] < 0.1 and not drift["psi_score"][2]  # the scores did not move
        (mail,) = services.mail.messages()
        assert f"Model health warning {shifted.isoformat()}" in mail["Subject"]
        assert "psi_amt" in mail["Subject"]
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM model_health_warnings")
            assert cur.fetchone()[0] == 1
            cur.execute("SELECT count(*) FROM model_health GROUP BY day")
            assert {row[0] for row in cur.fetchall()} == {len(figures)}  # upserted, not doubled
    finally:
        conn.close()
