"""`make smoke`: the whole stack as `make run` starts it, end to end, then nothing left running.

Free ports, a temporary state directory, this session's database and a throwaway Airflow
metadata database; one hour of yesterday is back-filled (a whole day in `make run`). Passes when
Airflow shows a successful *scheduled* run of fraud_pipeline, the inbox has an email, yesterday's
report has rows, and Ctrl-C leaves no process behind.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import psycopg2
import pytest

from fraud_pipeline import clock
from fraud_pipeline.devstack.airflow_local import ADMIN_USER, AirflowClient
from fraud_pipeline.devstack.local_stack import STACK_ID_ENV
from fraud_pipeline.storage import db
from tests.support.processes import Stack

BUDGET_S = 480.0  # a ceiling for a loaded machine: the loop ends as soon as all is there


def green_scheduled_run(client: AirflowClient) -> dict | None:
    runs = client.dag_runs("fraud_pipeline")
    return next((r for r in runs if r["run_type"] == "scheduled" and r["state"] == "success"), None)


def report_rows(url: str) -> int:
    yesterday = clock.yesterday()
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM fraud_report_for_day(%s)", (yesterday,))
        (count,) = cur.fetchone()
    conn.close()
    return int(count)


@pytest.mark.slow
@pytest.mark.airflow
@pytest.mark.timeout(1200)  # the budget, then a stop that may take minutes on a loaded machine
def test_make_run_end_to_end(database_url, tmp_path, monkeypatch):
    airflow_db = f"airflow_smoke_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("AIRFLOW_DATABASE_NAME", airflow_db)
    state_dir = tmp_path / "state"
    started = time.monotonic()
    stack = Stack(state_dir, "--free-ports", "--backfill-hours", "1", "--status-every", "15")
    try:
        state = stack.wait_for_state(timeout=BUDGET_S)
        ready_s = time.monotonic() - started
        password = json.loads(
            (state_dir / "airflow" / "simple_auth_manager_passwords.json").read_text()
        )[ADMIN_USER]
        client = AirflowClient(state["urls"]["airflow"], ADMIN_USER, password)
        green, emails, rows = None, 0, 0
        while time.monotonic() - started < BUDGET_S:
            assert stack.process.poll() is None, "the stack stopped by itself"
            green = green or green_scheduled_run(client)
            emails = len(list(Path(state["maildir"]).glob("*.eml")))
            rows = report_rows(state["database_url"])
            if green and emails and rows:
                break
            time.sleep(5)
        client.close()
        done_s = time.monotonic() - started
        print(
            f"smoke: ready after {ready_s:.0f} s, green run + email + report after {done_s:.0f} s"
        )
        assert green, "no successful scheduled fraud_pipeline run"
        assert emails >= 1, "no email in the inbox"
        assert rows > 0, "yesterday's report is empty"
    finally:
        try:
            output = stack.stop()  # SIGTERM; killed (and failing) if it does not stop in time
        finally:
            db.drop_database(db.with_database(database_url, airflow_db))
    assert stack.process.returncode == 0, output[-3000:]
    assert stack.left_behind() == [], f"left behind ({STACK_ID_ENV})"
