"""A realistic report to look at: real-format payments, scored by the real model, stored as the DAG would.

The payments come from the original Sparkov generator's held-out weeks (December 2019 of
`sparkov_train_2019.csv.gz`, never used for training or tuning), moved by whole weeks onto the
report's days (dates of birth move too, so ages stay true), or from our own generator
(`--source generator`). `seed_demo(conn, day)` fills `payments_scored` with them from a few days
before `day` up to `until` (default: now), scored in-process by the verified model artifacts with
the pipeline's own `scored_frame` (probability, decision, reasons, model version). The days before
`day` give the card-history features their past and the report its day-before comparison; the
payments after it make the report's freshness read "live". The true labels are kept, so the page
also shows how the model did.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import psycopg2.extensions

from fraud_devstack.stack.generate import payments_between
from fraud_pipeline import clock
from fraud_pipeline.ingest.payments import read_sparkov_csv, to_payments
from fraud_pipeline.model.artifacts import load_model
from fraud_pipeline.pipeline.steps import scored_frame
from fraud_pipeline.storage.upsert import upsert_scored

log = logging.getLogger(__name__)

# Days stored before the report's day: card history for the features, the day-before comparison.
WARM_UP_DAYS = {"sparkov": 30, "generator": 3}
HELD_OUT_WEEK_START = date(2019, 12, 2)  # December weeks, never trained on; days follow them
HELD_OUT_WEEKS = 3


@dataclass(frozen=True)
class DemoResult:
    payments: int
    flagged: int
    true_frauds: int
    start: datetime
    end: datetime


def sparkov_days(start: datetime, end: datetime, day: date) -> pd.DataFrame:
    """Held-out Sparkov payments moved by whole weeks so that a December 2019 day falls on `day`.

    Of the December weeks, the one whose day has the most frauds is taken: a report is worth
    reading when there is something to report.
    """
    from fraud_pipeline.model.train import GENERATED_FILE

    raw = read_sparkov_csv(GENERATED_FILE)
    original = pd.to_datetime(raw["trans_date_trans_time"])
    first = HELD_OUT_WEEK_START + timedelta(
        days=(day.weekday() - HELD_OUT_WEEK_START.weekday()) % 7
    )
    candidates = [first + timedelta(weeks=w) for w in range(HELD_OUT_WEEKS)]
    frauds = {a: int(raw.loc[original.dt.date == a, "is_fraud"].sum()) for a in candidates}
    anchor = max(candidates, key=lambda a: (frauds[a], -candidates.index(a)))
    shift = pd.Timedelta(days=(day - anchor).days)
    times = original + shift
    lower, upper = (pd.Timestamp(clock.local(t)).tz_localize(None) for t in (start, end))
    kept = raw[(times >= lower) & (times < upper)].copy()
    kept["trans_date_trans_time"] = times[kept.index].dt.strftime("%Y-%m-%d %H:%M:%S")
    kept["dob"] = (pd.to_datetime(kept["dob"]) + shift).dt.strftime("%Y-%m-%d")
    kept["unix_time"] = (times[kept.index].astype("int64") // 10**9).to_numpy()
    return kept.reset_index(drop=True)


def seed_demo(
    conn: psycopg2.extensions.connection,
    day: date,
    *,
    until: datetime | None = None,
    rate_per_min: float = 10.0,
    seed: int = 42,
    source: str = "sparkov",
) -> DemoResult:
    """Generate, score and upsert payments from WARM_UP_DAYS before `day` to `until`."""
    start = clock.day_start(day - timedelta(days=WARM_UP_DAYS[source]))
    end = max(until or clock.now(), clock.day_bounds(day)[1])
    print(
        f"generating payments {start:%Y-%m-%d %H:%M} -> {end:%Y-%m-%d %H:%M} ...", file=sys.stderr
    )
    if source == "sparkov":
        raw = sparkov_days(start, end, day)
    else:
        raw = payments_between(start, end, seed=seed, rate_per_min=rate_per_min)
    payments = to_payments(raw)
    print(f"scoring {len(payments):,} payments with the model ...", file=sys.stderr)
    model = load_model()
    named, matrix = model.feature_table(payments)
    scored = scored_frame(payments, named, matrix, model.predict(matrix), model.version, model)
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


def main(
    *, day: str | None = None, source: str = "sparkov", rate: float = 10.0, seed: int = 42
) -> int:
    """`fraud-dev demo`: `day` is YYYY-MM-DD, default yesterday (business time)."""
    from fraud_pipeline.storage.db import connect

    report_day = date.fromisoformat(day) if day else clock.yesterday()
    conn = connect()
    try:
        seed_demo(conn, report_day, rate_per_min=rate, seed=seed, source=source)
    finally:
        conn.close()
    return 0
