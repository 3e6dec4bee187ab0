"""A realistic report to look at: generated payments, scored by the real model, stored as the DAG would.

`seed_demo(conn, day)` fills `payments_scored` with the generator's payments from a few days
before `day` up to `until` (default: now), scored in-process by the verified model artifacts with
the pipeline's own `scored_frame` (probability, decision, reasons, model version). The days before
`day` give the card-history features their past and the report its day-before comparison; the
payments after it make the report's freshness read "live". The true labels are kept, so the page
also shows how the model did.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import psycopg2.extensions

from fraud_pipeline.config import get_settings
from fraud_pipeline.generate import payments_between
from fraud_pipeline.model import load_model
from fraud_pipeline.payments import to_payments
from fraud_pipeline.pipeline import scored_frame
from fraud_pipeline.upsert import upsert_scored

log = logging.getLogger(__name__)

WARM_UP_DAYS = 3  # card history the features look back on (and the day-before comparison)


@dataclass(frozen=True)
class DemoResult:
    payments: int
    flagged: int
    true_frauds: int
    start: datetime
    end: datetime


def seed_demo(
    conn: psycopg2.extensions.connection,
    day: date,
    *,
    until: datetime | None = None,
    rate_per_min: float = 10.0,
    seed: int = 42,
) -> DemoResult:
    """Generate, score and upsert payments from WARM_UP_DAYS before `day` to `until`."""
    tz = get_settings().tz
    start = datetime.combine(day - timedelta(days=WARM_UP_DAYS), datetime.min.time(), tzinfo=tz)
    end = until or datetime.now(tz)
    end = max(end, datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=tz))
    print(
        f"generating payments {start:%Y-%m-%d %H:%M} -> {end:%Y-%m-%d %H:%M} ...", file=sys.stderr
    )
    payments = to_payments(payments_between(start, end, seed=seed, rate_per_min=rate_per_min))
    print(f"scoring {len(payments):,} payments with the model ...", file=sys.stderr)
    model = load_model()
    matrix = model.features(payments)
    scored = scored_frame(payments, matrix, model.predict(matrix), model.version, model)
    # The DAG scores each payment within a minute or two of it happening.
    delay = np.random.default_rng(seed).uniform(20, 110, len(scored))
    scored["scored_at"] = (scored["trans_time"] + pd.to_timedelta(delay, unit="s")).clip(
        upper=pd.Timestamp(end)
    )
    upsert_scored(conn, scored)
    result = DemoResult(
        payments=len(scored),
        flagged=int(scored["is_fraud_pred"].sum()),
        true_frauds=int((scored["is_fraud"] == 1).sum()),
        start=start,
        end=end,
    )
    print(
        f"stored {result.payments:,} payments: {result.flagged:,} flagged, "
        f"{result.true_frauds:,} true frauds (model {model.version})",
        file=sys.stderr,
    )
    return result


def main(args: argparse.Namespace) -> int:
    from fraud_pipeline.db import connect
    from fraud_pipeline.report import yesterday

    day = date.fromisoformat(args.day) if args.day else yesterday()
    conn = connect()
    try:
        seed_demo(conn, day, rate_per_min=args.rate, seed=args.seed)
    finally:
        conn.close()
    return 0
