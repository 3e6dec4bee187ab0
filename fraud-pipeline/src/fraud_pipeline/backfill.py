"""`fraud-pipeline run-interval`: the pipeline's steps over a long period, chunk by chunk.

Used to back-fill yesterday on first start and for benchmarks; each chunk is one idempotent run,
so an interrupted backfill is simply started again.
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from fraud_pipeline.db import connect
from fraud_pipeline.model import load_model
from fraud_pipeline.pipeline import run_interval
from fraud_pipeline.scoring import EndpointClient


def backfill(
    start: pd.Timestamp, end: pd.Timestamp, chunk: pd.Timedelta, *, alerts: bool = True
) -> int:
    """Run [start, end) in chunks with progress output; return the number of payments loaded."""
    model, client, conn = load_model(), EndpointClient.from_settings(), connect()
    loaded, began = 0, time.monotonic()
    try:
        lower = start
        while lower < end:
            upper = min(lower + chunk, end)
            summary = run_interval(
                conn,
                lower.to_pydatetime(),
                upper.to_pydatetime(),
                model=model,
                client=client,
                send_alerts=alerts,
                run_id=f"backfill__{lower.isoformat()}",
            )
            loaded += summary["load"]["loaded"]
            print(
                f"  {lower:%Y-%m-%d %H:%M} -> {upper:%H:%M}: {summary['load']['loaded']:,} scored, "
                f"{summary['load']['frauds']} frauds, {summary['validate']['quarantined']} quarantined "
                f"({time.monotonic() - began:.0f} s)",
                flush=True,
            )
            lower = upper
    finally:
        conn.close()
    return loaded


def main(args: argparse.Namespace) -> int:
    start, end = pd.Timestamp(args.start), pd.Timestamp(args.end)
    if start.tzinfo is None or end.tzinfo is None:
        print("run-interval: --start and --end need a UTC offset, e.g. 2026-11-21T00:00+01:00")
        return 2
    loaded = backfill(
        start, end, pd.Timedelta(minutes=args.chunk_minutes), alerts=not args.no_alerts
    )
    print(f"done: {loaded:,} payments scored and stored")
    return 0
