"""Online card history: what PostgreSQL knows of a batch's cards over the features' lookback.

With it and the current batch, `features.history_features` gives exactly the numbers training
computed offline from the whole file (tests/model/test_features.py proves it batch by batch).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import psycopg2.extensions
from psycopg2 import sql

from fraud_pipeline.model.features import LOOKBACK
from fraud_pipeline.schema import PAYMENT_COLUMNS

_SELECT = sql.SQL(
    "SELECT {columns} FROM payments_scored"
    " WHERE card_token = ANY(%s) AND trans_time >= %s AND trans_time < %s"
    " ORDER BY card_token, trans_time, trans_num"
).format(
    columns=sql.SQL(", ").join(
        sql.SQL("{}::float8" if c == "amt" else "{}").format(sql.Identifier(c))
        for c in PAYMENT_COLUMNS
    )
)


def load_card_history(
    conn: psycopg2.extensions.connection,
    card_tokens: list[str] | pd.DataFrame,
    before: datetime | None = None,
    *,
    since: datetime | None = None,
) -> pd.DataFrame:
    """The cards' stored payments in [since, before), as a payments frame (PAYMENT_COLUMNS).

    `since` defaults to `before - LOOKBACK`, all the history the features look at; the query runs
    on the (card_token, trans_time) index. Give `before` = the time of the batch's first payment.
    Passing a batch of payments instead of tokens loads that batch's cards from LOOKBACK before
    its first payment up to its last one (stored payments later than a given payment are
    harmless: features only count what precedes each payment).
    """
    if isinstance(card_tokens, pd.DataFrame):
        return load_batch_history(conn, card_tokens)
    if before is None:
        raise TypeError("load_card_history needs `before` (the batch's first payment time)")
    tokens = sorted(set(card_tokens))
    if not tokens:
        return _frame([])
    with conn.cursor() as cur:
        cur.execute(_SELECT, (tokens, since or before - LOOKBACK, before))
        return _frame(cur.fetchall())


def load_batch_history(
    conn: psycopg2.extensions.connection, payments: pd.DataFrame
) -> pd.DataFrame:
    """Stored payments of the batch's cards, from LOOKBACK before its first payment to its last."""
    if payments.empty:
        return _frame([])
    times = payments["trans_time"]
    return load_card_history(
        conn,
        payments["card_token"].astype(str).tolist(),
        times.max() + timedelta(microseconds=1),
        since=times.min() - LOOKBACK,
    )


def _frame(rows: list[tuple[object, ...]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(PAYMENT_COLUMNS))
    frame["trans_time"] = pd.to_datetime(frame["trans_time"], utc=True)
    frame["amt"] = frame["amt"].astype(float)
    frame["card_token"] = frame["card_token"].astype(str)
    frame["dob"] = frame["dob"].map(lambda d: None if d is None else str(d))
    frame["is_fraud"] = pd.to_numeric(frame["is_fraud"]).astype("Int64")
    return frame
