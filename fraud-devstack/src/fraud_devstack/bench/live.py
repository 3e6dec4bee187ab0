"""Latency in the running system: per-minute DAG runs in a local Airflow, and alert latency.

Starts the whole stack as `make run` does (`fraud-dev run`, LocalExecutor, free ports, a
scratch database, no back-fill), lets the payments API generate a busy stream, and reads:

- `dag_run_s`: for each successful *scheduled* `fraud_pipeline` run, queued -> success (Airflow's
  REST API), and `run_lag_s`: end of the run's minute -> success;
- `alert_latency_s`: for each fraud in the emails the SMTP catcher received, its event time ->
  the email's arrival (the `.eml` file's time; the email's X-Fraud-Alert-Id names its frauds).
"""

from __future__ import annotations

import email
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg2

from fraud_devstack.bench.storage import scratch_database
from fraud_devstack.stack.airflow_local import ADMIN_USER, AirflowClient
from fraud_pipeline.storage import db


def _summary(values: list[float]) -> dict[str, float]:
    array = np.asarray(values, dtype=float)
    return {
        "n": len(array),
        "median": float(np.median(array)),
        "p95": float(np.percentile(array, 95)),
        "max": float(array.max()),
    }


def _wait_for_state(state_dir: Path, process: subprocess.Popen[bytes], timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = (state_dir / "stack.out").read_text()[-3000:]
            raise RuntimeError(f"the stack stopped while starting:\n{output}")
        if (state_dir / "stack.json").exists():
            return dict(json.loads((state_dir / "stack.json").read_text()))
        time.sleep(1)
    raise TimeoutError("the stack did not start in time")


def scheduled_runs(client: AirflowClient, ready: pd.Timestamp) -> list[dict[str, Any]]:
    """The green scheduled runs of minutes that ended once the stack was `ready`: the run the
    scheduler makes at once for the minute before the stack was up measures the start, not a
    run (its lag counts the start, its tasks are the first of each process)."""
    runs = client.dag_runs("fraud_pipeline", limit=50)
    return [
        r
        for r in runs
        if r["run_type"] == "scheduled"
        and r["state"] == "success"
        and pd.Timestamp(r["data_interval_end"]) > ready
    ]


def dag_run_seconds(runs: list[dict[str, Any]]) -> tuple[list[float], list[float]]:
    """(queued -> success, end of the run's minute -> success) per run, in seconds."""

    def at(value: str) -> pd.Timestamp:
        return pd.Timestamp(value)

    durations = [(at(r["end_date"]) - at(r["queued_at"])).total_seconds() for r in runs]
    lags = [(at(r["end_date"]) - at(r["data_interval_end"])).total_seconds() for r in runs]
    return durations, lags


def task_seconds(client: AirflowClient, runs: list[dict[str, Any]]) -> dict[str, float]:
    """Median seconds per task: its own work (duration) and its wait before it (queued -> start)."""
    work: dict[str, list[float]] = {}
    for run in runs:
        body = client.request(
            "GET", f"/api/v2/dags/fraud_pipeline/dagRuns/{run['dag_run_id']}/taskInstances"
        )
        for task in body["task_instances"]:
            work.setdefault(task["task_id"], []).append(float(task["duration"] or 0))
            if task.get("queued_when") and task.get("start_date"):
                wait = pd.Timestamp(task["start_date"]) - pd.Timestamp(task["queued_when"])
                work.setdefault("queued -> start", []).append(wait.total_seconds())
    return {name: float(np.median(values)) for name, values in work.items()}


def alert_latencies(maildir: Path, database_url: str, since: pd.Timestamp) -> list[float]:
    """Per alerted fraud made from `since` on: seconds from its event time to its email."""
    arrivals: dict[str, float] = {}
    for path in maildir.glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes())
        alert_id = message.get("X-Fraud-Alert-Id")
        if alert_id:
            arrivals[alert_id] = path.stat().st_mtime
    if not arrivals:
        return []
    with psycopg2.connect(database_url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT alert_id, extract(epoch FROM trans_time) FROM payments_scored "
            "WHERE alert_id = ANY(%s) AND trans_time >= %s",
            (list(arrivals), since.to_pydatetime()),
        )
        rows = cur.fetchall()
    conn.close()
    return [arrivals[alert_id] - float(event) for alert_id, event in rows]


@contextmanager
def local_stack(
    url: str, state: Path, *options: str
) -> Iterator[tuple[dict[str, Any], AirflowClient]]:
    """`fraud-dev run` on `url` (free ports, no back-fill, its own Airflow database, `options`
    added), state in `state`; yields (its stack.json, an Airflow client) once it is ready, and
    always stops it with SIGTERM (its supervisor stops every service), then drops Airflow's
    database."""
    airflow_db = f"airflow_bench_{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "DATABASE_URL": url, "AIRFLOW_DATABASE_NAME": airflow_db}
    started = time.monotonic()
    output = (state / "stack.out").open("w")
    command = [sys.executable, "-m", "fraud_devstack.cli", "run", "--state-dir", str(state)]
    command += ["--free-ports", "--no-backfill", "--status-every", "60", *options]
    stack = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)
    try:
        info = _wait_for_state(state, stack, timeout=300)
        print(f"  stack ready after {time.monotonic() - started:.0f} s", flush=True)
        password = json.loads(
            (state / "airflow" / "simple_auth_manager_passwords.json").read_text()
        )[ADMIN_USER]
        client = AirflowClient(info["urls"]["airflow"], ADMIN_USER, password)
        try:
            yield info, client
        finally:
            client.close()
    finally:
        if stack.poll() is None:
            stack.send_signal(signal.SIGTERM)  # as Ctrl-C; SIGINT is ignored in background jobs
        try:
            stack.wait(timeout=120)  # its supervisor stops every service, SIGKILL after a grace
        except subprocess.TimeoutExpired:
            stack.kill()
            stack.wait()
        output.close()
        db.drop_database(db.with_database(url, airflow_db))


def run(runs_wanted: int = 5, payments_per_min: float = 600.0, budget_s: float = 480.0) -> dict:
    """Start the stack, wait up to `budget_s` once it is ready for `runs_wanted` green scheduled
    runs, measure, stop it."""
    with (
        scratch_database() as url,
        tempfile.TemporaryDirectory() as state,
        local_stack(url, Path(state), "--payments-rate", str(payments_per_min)) as (info, client),
    ):
        started = time.monotonic()
        ready = pd.Timestamp.now(tz="UTC")
        runs: list[dict[str, Any]] = []
        while time.monotonic() - started < budget_s:
            runs = scheduled_runs(client, ready)
            if len(runs) >= runs_wanted:
                break
            time.sleep(5)
        print(f"  {len(runs)} green scheduled runs", flush=True)
        if not runs:
            raise RuntimeError("no successful scheduled run within the budget")
        tasks = task_seconds(client, runs)
        durations, lags = dag_run_seconds(runs)
        first_minute = min(pd.Timestamp(r["data_interval_start"]) for r in runs)
        latencies = alert_latencies(Path(info["maildir"]), url, first_minute)
    figures: dict[str, Any] = {
        "dag_run_s": _summary(durations),
        "run_lag_s": _summary(lags),
        "task_median_s": tasks,
        "payments_per_min": payments_per_min,
    }
    if latencies:
        figures["alert_latency_s"] = _summary(latencies)
    return figures
