"""The review queue's page at scale (issue 30): how long the To review page's reads take with
100,000 open alerts, as the report's own role reads them.

In a scratch database: `n` flagged payments without a verdict on `n / 4` cards over 30 days
(a few live alerts, the rest catch-up digests), as many unflagged ones. Each read is timed
`repeat` times: the first page of the default queue, a later page, a search by a card's last 4,
today's live alerts, one case. `python -m fraud_devstack.bench.queue [n]` prints the figures.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import psycopg2
from sqlalchemy import create_engine

from fraud_devstack.bench.storage import scored_rows, scratch_database
from fraud_pipeline.report import reviews
from fraud_pipeline.report.reviews import CaseFilter
from fraud_pipeline.storage import db
from fraud_pipeline.storage.upsert import upsert_scored

PAGE_SIZE = 25


def open_alerts(n: int, seed: int = 11) -> pd.DataFrame:
    """`n` open alerts on `n / 4` cards over 30 days, and `n` unflagged payments."""
    rng = np.random.default_rng(seed)
    frame = scored_rows(2 * n, seed=seed)
    cards = np.arange(2 * n) % max(n // 4, 1)
    frame["card_token"] = [f"{c:064x}" for c in cards]
    frame["card_last4"] = [f"{c % 10_000:04d}" for c in cards]
    now = pd.Timestamp.now(tz="UTC")
    frame["trans_time"] = now - pd.to_timedelta(rng.random(2 * n) * 30, unit="D")
    frame["is_fraud_pred"] = np.arange(2 * n) < n
    frame["fraud_probability"] = np.where(frame["is_fraud_pred"], 0.5 + rng.random(2 * n) / 2, 0.1)
    return frame


def _timed(read: Callable[[], Any], repeat: int) -> dict[str, float]:
    read()  # a warm cache, as a page an analyst keeps open
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        read()
        seconds.append(time.perf_counter() - started)
    ordered = sorted(seconds)
    return {
        "p50": round(statistics.median(ordered), 3),
        "p95": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 3),
    }


def run(n: int = 100_000, repeat: int = 5) -> dict[str, Any]:
    frame = open_alerts(n)
    with scratch_database() as url:
        conn = psycopg2.connect(url)
        try:
            upsert_scored(conn, frame)
            with conn, conn.cursor() as cur:
                cur.execute(
                    "UPDATE payments_scored SET alert_kind = CASE WHEN random() < 0.05 "
                    "THEN 'alert' ELSE 'digest' END WHERE is_fraud_pred"
                )
                cur.execute("ANALYZE payments_scored")
        finally:
            conn.close()
        reader = create_engine(
            db.as_user(url, "fraud_report_reader").replace(
                "postgresql://", "postgresql+psycopg2://"
            )
        )
        try:
            first = reviews.review_cases(reader, CaseFilter(), 1, PAGE_SIZE)
            key = first.cases[0].key
            reads = {
                "first_page": lambda: reviews.review_cases(reader, CaseFilter(), 1, PAGE_SIZE),
                "page_10": lambda: reviews.review_cases(reader, CaseFilter(), 10, PAGE_SIZE),
                "search_last4": lambda: reviews.review_cases(
                    reader, CaseFilter(days=None, search="0042"), 1, PAGE_SIZE
                ),
                "live_today": lambda: reviews.review_cases(
                    reader, CaseFilter(days=1, kind="live"), 1, PAGE_SIZE
                ),
                "one_case": lambda: reviews.review_case(reader, key),
            }
            timings = {name: _timed(read, repeat) for name, read in reads.items()}
        finally:
            reader.dispose()
    pages = [timings[name] for name in ("first_page", "page_10", "search_last4", "live_today")]
    return {
        "queue_open_alerts": n,
        "queue_cases": first.matching,
        "queue_reads_s": timings,
        # A page of the queue, whichever of its reads is slowest (a case opened: one_case).
        "queue_page_s": {q: max(t[q] for t in pages) for q in ("p50", "p95")},
    }


if __name__ == "__main__":
    print(json.dumps(run(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000), indent=2))
