"""`make smoke`: the whole stack as `make run` starts it, end to end, then nothing left running.

Free ports, a temporary state directory, this session's database and a throwaway Airflow
metadata database; one hour of yesterday is back-filled (a whole day in `make run`). Passes when
Airflow shows a successful *scheduled* run of fraud_pipeline, the inbox has an email, yesterday's
report has rows, and Ctrl-C leaves no process behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg2
import pytest

from fraud_pipeline import clock
from fraud_pipeline.devstack.airflow_local import ADMIN_USER, AirflowClient
from fraud_pipeline.devstack.local_stack import STACK_ID_ENV
from fraud_pipeline.storage import db
from tests.devstack.test_supervisor import processes_with, wait_for_file

BUDGET_S = 240.0


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
def test_make_run_end_to_end(database_url, tmp_path, monkeypatch):
    airflow_db = f"airflow_smoke_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("AIRFLOW_DATABASE_NAME", airflow_db)
    state_dir = tmp_path / "state"
    started = time.monotonic()
    run = subprocess.Popen(
        [sys.executable, "-m", "fraud_pipeline.cli", "run", "--state-dir", str(state_dir),
         "--free-ports", "--backfill-hours", "1", "--status-every", "15"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=os.environ.copy(),
    )  # fmt: skip
    state: dict = {}
    try:
        state = wait_for_file(state_dir / "stack.json", run, timeout=BUDGET_S)
        ready_s = time.monotonic() - started
        password = json.loads(
            (state_dir / "airflow" / "simple_auth_manager_passwords.json").read_text()
        )[ADMIN_USER]
        client = AirflowClient(state["urls"]["airflow"], ADMIN_USER, password)
        green, emails, rows = None, 0, 0
        while time.monotonic() - started < BUDGET_S:
            assert run.poll() is None, "the stack stopped by itself"
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
        if run.poll() is None:
            run.send_signal(signal.SIGINT)
        output, _ = run.communicate(timeout=90)
        db.drop_database(db.with_database(database_url, airflow_db))
    assert run.returncode == 0, output[-3000:]
    assert processes_with(state["stack_id"]) == [], f"left behind ({STACK_ID_ENV})"
