"""`fraud-pipeline run-interval`: the pipeline's steps over a long period, chunk by chunk.

Used to back-fill yesterday on first start and for benchmarks; each chunk is one idempotent run,
so an interrupted backfill is simply started again.
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from fraud_pipeline.config import get_settings
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


def yesterday(tz: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """Yesterday's calendar day in the business time zone (23 or 25 hours on DST days)."""
    end = pd.Timestamp.now(tz=tz).normalize()
    return (end - pd.Timedelta(days=1)).normalize(), end


def main(args: argparse.Namespace) -> int:
    if args.yesterday:
        start, end = yesterday(get_settings().business_tz)
    elif args.start and args.end:
        start, end = pd.Timestamp(args.start), pd.Timestamp(args.end)
    else:
        print("run-interval: give --start and --end, or --yesterday")
        return 2
    if start.tzinfo is None or end.tzinfo is None:
        print("run-interval: --start and --end need a UTC offset, e.g. 2026-11-21T00:00+01:00")
        return 2
    loaded = backfill(
        start, end, pd.Timedelta(minutes=args.chunk_minutes), alerts=not args.no_alerts
    )
    print(f"done: {loaded:,} payments scored and stored")
    return 0
