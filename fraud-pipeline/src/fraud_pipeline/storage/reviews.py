"""The analysts' verdicts as stored payments: what `train --with-reviews` learns from.

A reviewed payment is a payments_scored row with a verdict in force (v_alert_verdicts: the latest
review of each payment; earlier, superseded reviews are never read).
"""

from __future__ import annotations

from typing import Final

import pandas as pd
import psycopg2.extensions
from psycopg2 import sql

from fraud_pipeline.schema import PAYMENT_COLUMNS
from fraud_pipeline.storage.history import payment_columns, payments_frame

REVIEW_COLUMNS: Final[tuple[str, ...]] = ("verdict", "reviewed_at")

_SELECT_REVIEWED = sql.SQL(
    "SELECT {columns}, v.verdict, v.reviewed_at"
    " FROM payments_scored p JOIN v_alert_verdicts v ON v.trans_num = p.trans_num"
    " ORDER BY p.trans_time, p.trans_num"
).format(columns=payment_columns(PAYMENT_COLUMNS, "p"))


def load_reviewed_payments(conn: psycopg2.extensions.connection) -> pd.DataFrame:
    """Every reviewed payment (PAYMENT_COLUMNS) with its verdict in force and when it was given,
    in time order."""
    with conn.cursor() as cur:
        cur.execute(_SELECT_REVIEWED)
        frame = payments_frame(cur.fetchall(), (*PAYMENT_COLUMNS, *REVIEW_COLUMNS))
    frame["reviewed_at"] = pd.to_datetime(frame["reviewed_at"], utc=True)
    return frame
