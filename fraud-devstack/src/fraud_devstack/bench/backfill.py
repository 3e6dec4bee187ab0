"""Back-filling a large period: `fraud-pipeline run-interval` end to end, time and peak memory.

The payments API (generator) and the model server run in their own processes; the back-fill
is the real command, in a scratch database, one chunk (one idempotent run) at a time, so its
memory is bounded by the chunk, not by the period. Peak RSS is the back-fill process's own
(`wait4` rusage).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import AbstractContextManager
from typing import Any

import pandas as pd
import psycopg2

from fraud_devstack.bench.scoring import cli_server, model_server
from fraud_devstack.bench.storage import scratch_database
from fraud_pipeline import clock

# The generator serves about this many times its nominal rate over a whole day (daily rhythm).
GENERATOR_DAY_FACTOR = 1.38


def payments_api(rate_per_min: float) -> AbstractContextManager[str]:
    """`fraud-dev serve-payments` (the generator) in its own process; its URL."""
    return cli_server("serve-payments", "--rate", str(rate_per_min))


def run(payments: int = 1_000_000, chunk_minutes: int = 60) -> dict[str, Any]:
    """Back-fill about `payments` generated payments over yesterday (23 to 25 hours)."""
    start, end = (pd.Timestamp(t) for t in clock.day_bounds(clock.yesterday()))
    rate = payments / ((end - start).total_seconds() / 60) / GENERATOR_DAY_FACTOR
    with scratch_database() as url, model_server() as model_url, payments_api(rate) as api_url:
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "SAGEMAKER_ENDPOINT_URL": model_url,
            "PAYMENTS_API_URL": api_url,
            "PAYMENTS_API_TIMEOUT_S": "60",
        }
        command = [
            sys.executable,
            "-m",
            "fraud_pipeline.cli",
            "run-interval",
            "--start",
            start.isoformat(),
            "--end",
            end.isoformat(),
            "--chunk-minutes",
            str(chunk_minutes),
            "--no-alerts",
        ]
        started = time.perf_counter()
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
        assert process.stdout is not None
        for line in process.stdout:
            if line.strip():
                print(f"   {line.rstrip()}", flush=True)
        _, status, usage = os.wait4(process.pid, 0)  # reaped here: its own peak RSS
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            raise RuntimeError(f"run-interval failed (exit code {process.returncode})")
        with psycopg2.connect(url) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM payments_scored")
            (stored,) = cur.fetchone()
        conn.close()
    return {
        "backfill_payments": int(stored),
        "backfill_s": seconds,
        "backfill_rows_per_s": stored / seconds,
        "backfill_chunk_minutes": chunk_minutes,
        "peak_rss_mb": usage.ru_maxrss / 1024,  # Linux: kilobytes
    }
