"""Unpausing fraud_retrain (issue 33): the scheduler starts the most recent Monday's slot at once,
days after its time; that run must not train on its week-old window (on a fresh stack: before
the pipeline stored anything), but on the latest complete one, and say which. When a window
finds nothing, the failure says what payments_scored does hold."""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timedelta

import psycopg2
import pytest

from fraud_devstack.stack.airflow_local import ADMIN_USER, AirflowClient
from fraud_pipeline import clock
from fraud_pipeline.config import get_settings
from fraud_pipeline.registry.versions import set_up_database
from fraud_pipeline.retrain import run
from fraud_pipeline.retrain.window import load_labelled
from fraud_pipeline.storage import db
from fraud_pipeline.storage.upsert import upsert_scored
from tests.support.airflow_runs import DAGS, run_python
from tests.support.factories import public_sample, scored_payments

PAYMENTS = 2_000
WEEK_PAYMENTS = 20_000  # the stack test's week: enough frauds on both sides of the holdout


def scheduled_slot_on_unpause(airflow_env: dict[str, str]) -> datetime:
    """The run the scheduler creates when the DAG is unpaused (no run yet, no catch-up)."""
    out = run_python(
        """
        from airflow.dag_processing.dagbag import DagBag
        from airflow.timetables.base import TimeRestriction
        dag = DagBag(dag_folder="%s").dags["fraud_retrain"]
        info = dag.timetable.next_dagrun_info(
            last_automated_data_interval=None,
            restriction=TimeRestriction(dag.start_date, dag.end_date, dag.catchup),
        )
        print("SLOT", info.logical_date.isoformat())
        """
        % DAGS,
        airflow_env,
    )
    line = next(line for line in out.splitlines() if line.startswith("SLOT "))
    return datetime.fromisoformat(line.removeprefix("SLOT "))


@pytest.mark.airflow
def test_unpausing_trains_on_the_latest_complete_window(airflow_env, conn, clean_db, monkeypatch):
    set_up_database(clean_db)
    monkeypatch.setenv("RETRAIN_WINDOW_DAYS", "6")
    monkeypatch.setenv("RETRAIN_HOLDOUT_DAYS", "2")
    get_settings.cache_clear()
    settings = get_settings()
    now = clock.now()
    # A week of labelled payments, up to now: what a week-old stack holds.
    rows = public_sample().sample(PAYMENTS, random_state=3)
    step = 7 * 86_400 / PAYMENTS
    upsert_scored(
        conn, scored_payments(PAYMENTS, start=now - timedelta(days=7), step_s=step, rows=rows)
    )
    try:
        slot = scheduled_slot_on_unpause(airflow_env)
        assert slot <= now  # a slot in the past, started at once on unpause
        window, said = run.window_for_run(slot, settings, scheduled=True)
        today = clock.day_start(clock.today())
        if now - slot > run.STALE_SLOT and slot < today:
            # Not the slot's own window: the latest complete one, and the log says so.
            assert window.end == today and window.end > slot
            assert "runs" in said and "h late" in said and "latest complete window" in said
        else:  # the slot is today's, on time (a Monday morning): its own window
            assert window.end == slot
        assert window.end - window.start == timedelta(days=6)
        assert said.endswith(
            f"measuring on {window.holdout_start.isoformat(timespec='minutes')}"
            f" to {window.end.isoformat(timespec='minutes')}"
        )
        labelled = load_labelled(conn, window)
        learn = labelled.before(window.holdout_start)
        holdout = labelled.since(window.holdout_start)
        assert len(learn) > 0 and len(holdout) > 0
        assert holdout.payments["trans_time"].max() >= today - timedelta(hours=2)

        # A window with nothing in it fails saying what is stored, before any training.
        empty = run.window_ending(now - timedelta(days=30), settings)
        with pytest.raises(run.RetrainError, match=f"payments_scored holds {PAYMENTS:,} payments"):
            run.train_challenger(conn, empty, settings)
    finally:
        get_settings.cache_clear()


def test_a_slot_on_time_keeps_its_own_window(monkeypatch):
    monkeypatch.setenv("RETRAIN_WINDOW_DAYS", "6")
    monkeypatch.setenv("RETRAIN_HOLDOUT_DAYS", "2")
    get_settings.cache_clear()
    try:
        monday = "2026-11-30T03:00:00+01:00"
        with clock.frozen("2026-11-30T03:02:00+01:00"):
            window, said = run.window_for_run(
                clock.parse_instant(monday), get_settings(), scheduled=True
            )
        assert window.end == clock.parse_instant(monday) and "late" not in said
        with clock.frozen("2026-12-06T23:00:00+01:00"):  # unpaused the Sunday after
            by_hand, _ = run.window_for_run(clock.parse_instant(monday), get_settings())
            window, said = run.window_for_run(
                clock.parse_instant(monday), get_settings(), scheduled=True
            )
        assert by_hand.end == clock.parse_instant(monday)  # asked for that date: its window
        assert window.end == clock.day_start(
            clock.parse_instant("2026-12-06T12:00:00+01:00").date()
        )
        assert "the slot of 2026-11-30T03:00+01:00 runs 164 h late" in said
    finally:
        get_settings.cache_clear()


@pytest.mark.slow
@pytest.mark.airflow
@pytest.mark.timeout(1800)
def test_unpausing_fraud_retrain_on_a_stack_with_a_week_of_data(
    clean_db, tmp_path, monkeypatch, launch_stack
):
    """`make run --free-ports` on a database holding a week of scored payments (stored
    directly: the back-fill is proven elsewhere and took minutes here), then fraud_retrain
    unpaused as a user would: the scheduler starts last Monday's slot at once; its
    train_challenger trains on the latest complete window (to the start of today), not the
    slot's week-old one, and says so."""
    airflow_db = f"airflow_unpause_{uuid.uuid4().hex[:8]}"
    for name, value in {
        "AIRFLOW_DATABASE_NAME": airflow_db,
        "MODEL_STORE": str(tmp_path / "store"),
        "RETRAIN_WINDOW_DAYS": "6",
        "RETRAIN_HOLDOUT_DAYS": "2",
        "RETRAIN_SAMPLE_ROWS": "20000",
        "RETRAIN_MIN_EVAL_FRAUDS": "1",
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    airflow_url = db.with_database(clean_db, airflow_db)
    state_dir = tmp_path / "state"
    set_up_database(clean_db)
    week = 7 * 86_400
    rows = public_sample().sample(WEEK_PAYMENTS, random_state=5)
    start = clock.now() - timedelta(seconds=week)
    conn = psycopg2.connect(clean_db)
    try:
        upsert_scored(
            conn,
            scored_payments(WEEK_PAYMENTS, start=start, step_s=week / WEEK_PAYMENTS, rows=rows),
        )
    finally:
        conn.close()
    args = ("--free-ports", "--no-backfill", "--payments-rate", "5", "--status-every", "60")
    stack = launch_stack(state_dir, *args)
    try:
        state = stack.wait_for_state(timeout=900)
        deadline = time.monotonic() + 900
        password = json.loads(
            (state_dir / "airflow" / "simple_auth_manager_passwords.json").read_text()
        )[ADMIN_USER]
        client = AirflowClient(state["urls"]["airflow"], ADMIN_USER, password)
        try:
            client.unpause("fraud_retrain")
            trained = None
            while trained is None:
                assert stack.process.poll() is None and time.monotonic() < deadline + 600
                time.sleep(10)
                runs = [r for r in client.dag_runs("fraud_retrain") if r["run_type"] == "scheduled"]
                if not runs:
                    continue
                task = client.request(
                    "GET",
                    f"/api/v2/dags/fraud_retrain/dagRuns/{runs[0]['dag_run_id']}"
                    "/taskInstances/train_challenger",
                )
                assert task["state"] not in ("failed", "upstream_failed"), task
                if task["state"] == "success":
                    trained = client.request(
                        "GET",
                        f"/api/v2/dags/fraud_retrain/dagRuns/{runs[0]['dag_run_id']}"
                        "/taskInstances/train_challenger/xcomEntries/return_value",
                    )["value"]
            slot = datetime.fromisoformat(runs[0]["logical_date"])
            client.pause("fraud_retrain")
        finally:
            client.close()
        stack.stop()
    finally:
        get_settings.cache_clear()
        db.drop_database(airflow_url)
    trained = json.loads(trained) if isinstance(trained, str) else trained
    today = clock.day_start(clock.today())
    window = trained["window"]
    if clock.now() - slot > run.STALE_SLOT and slot < today:  # last Monday's slot, days old
        assert datetime.fromisoformat(window["to"]) == today  # the latest complete window
        assert datetime.fromisoformat(window["from"]) == today - timedelta(days=6)
        assert "runs" in trained["said"] and "latest complete window" in trained["said"]
    else:  # unpaused on a Monday within hours of the slot: the slot's own window, on time
        assert datetime.fromisoformat(window["to"]) == slot
        assert datetime.fromisoformat(window["from"]) == slot - timedelta(days=6)
        assert "latest complete window" not in trained["said"]
