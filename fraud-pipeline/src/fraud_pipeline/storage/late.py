"""Late payments: the record of each payment found after its minute had been fetched.

`steps.ingest` finds them (each run's look-back and re-check, `storage/watermark.py`; the
back-fill's `backfill.late_plan`); this module only writes what was found to `late_payments`
(migration 023), once per payment.
"""

from __future__ import annotations

import logging
from datetime import datetime

import pandas as pd
import psycopg2.extensions

log = logging.getLogger(__name__)


def record(
    cur: psycopg2.extensions.cursor,
    found: pd.DataFrame,
    fetched_at: datetime,
    run_id: str,
    *,
    beyond_bound: bool,
) -> int:
    """Record the late payments `found` (trans_num, trans_time), first finding kept; how many
    were new. Logged, never silent: beyond the bound as a warning."""
    if found.empty:
        return 0
    times = pd.to_datetime(found["trans_time"], utc=True)
    fetched = pd.Timestamp(fetched_at)
    rows = [
        (str(t), when.to_pydatetime(), fetched.to_pydatetime(), (fetched - when).total_seconds())
        for t, when in zip(found["trans_num"], times, strict=True)
    ]
    new = 0
    for chunk in range(0, len(rows), 5_000):
        cur.execute(
            "INSERT INTO late_payments (trans_num, trans_time, fetched_at, late_s, beyond_bound, "
            "run_id) SELECT t, tt, f, s, %s, %s FROM unnest(%s::text[], %s::timestamptz[], "
            "%s::timestamptz[], %s::double precision[]) AS v(t, tt, f, s) "
            "ON CONFLICT (trans_num) DO NOTHING",
            (beyond_bound, run_id, *map(list, zip(*rows[chunk : chunk + 5_000], strict=True))),
        )
        new += cur.rowcount
    most = max(r[3] for r in rows)
    if beyond_bound:
        log.warning(
            "run %s: %d payments arrived later than the late-payment bound (up to %.0f s after "
            "their time): stored now, counted in late_payments as beyond the bound",
            run_id,
            len(rows),
            most,
        )
    else:
        log.info(
            "run %s: %d late payments caught by the look-back (up to %.0f s after their time)",
            run_id,
            len(rows),
            most,
        )
    return new
