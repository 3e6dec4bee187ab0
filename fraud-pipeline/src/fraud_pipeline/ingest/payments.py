"""Raw Sparkov records → the pipeline's payments frame (schema.PAYMENT_COLUMNS).

This is where a card number is seen for the last time: `to_payments` replaces it by a keyed token
and the last four digits. Event time: `trans_date_trans_time` is a naive wall-clock time, read in
the business time zone (the real rows' `unix_time` lags 7 years and is ignored).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fraud_pipeline.config import Settings, get_settings
from fraud_pipeline.ingest.cards import identifier_token, tokenise_frame
from fraud_pipeline.schema import PAYMENT_COLUMNS, SPARKOV_COLUMNS, TEXT_FIELDS


def read_sparkov_csv(path: str | Path, nrows: int | None = None) -> pd.DataFrame:
    """Read a Sparkov CSV (optionally gzipped, with or without the leading unnamed index column)."""
    frame = pd.read_csv(path, dtype={c: str for c in ("cc_num", *TEXT_FIELDS)}, nrows=nrows)
    unnamed = [c for c in frame.columns if not c or str(c).startswith("Unnamed")]
    frame = frame.drop(columns=unnamed)
    missing = [c for c in SPARKOV_COLUMNS if c not in frame.columns and c != "is_fraud"]
    if missing:
        raise ValueError(f"{path}: not a Sparkov file, columns {missing} are missing")
    return frame


def localize(naive: pd.Series, settings: Settings | None = None) -> pd.Series:
    """Naive wall-clock times in the business time zone → aware timestamps.

    The hour that does not exist in spring is shifted forward; the repeated autumn hour is read
    as standard time, so every wall-clock value maps to exactly one instant.
    """
    tz = (settings or get_settings()).business_tz
    times = pd.to_datetime(naive)
    ambiguous = np.zeros(len(times), dtype=bool)
    return times.dt.tz_localize(tz, ambiguous=ambiguous, nonexistent="shift_forward")


def local_wall_clock(aware: pd.Series, settings: Settings | None = None) -> pd.Series:
    """Aware timestamps → naive wall-clock times in the business time zone (what features use)."""
    tz = (settings or get_settings()).business_tz
    return aware.dt.tz_convert(tz).dt.tz_localize(None)


def to_payments(raw: pd.DataFrame, settings: Settings | None = None) -> pd.DataFrame:
    """Tokenise the card, mask the id, set the aware event time: the frame every later step
    works on."""
    settings = settings or get_settings()
    key = settings.card_token_key.get_secret_value().encode()
    frame = tokenise_frame(raw, key).drop(columns=["card_masked"])
    if frame["card_token"].isna().any():  # training and generated data: every card is valid
        raise ValueError("card number must be 11 to 19 digits")
    frame["trans_time"] = localize(frame["trans_date_trans_time"], settings)
    # Ids as extract stores them (a card-like run tokenised): verdicts and scores join on them.
    frame["trans_num"] = frame["trans_num"].astype(str).map(lambda v: identifier_token(v, key))
    if "is_fraud" not in frame.columns:
        frame["is_fraud"] = pd.NA
    frame["is_fraud"] = pd.to_numeric(frame["is_fraud"]).astype("Int64")
    return frame.loc[:, list(PAYMENT_COLUMNS)]
