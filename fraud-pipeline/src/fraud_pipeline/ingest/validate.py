"""Validation of extracted payments: good rows go on, bad rows go to quarantine with a reason.

First per row (`ingest.rows`): a row extract could not read, a field of the wrong type, an
event time that cannot be read is quarantined with that reason alone, before anything else looks
at it. Then vectorised over the batch (pandas), so it costs little next to scoring. Every rule has
a short reason text; a row that breaks several rules is quarantined with all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd

from fraud_pipeline import clock
from fraud_pipeline.config import get_settings
from fraud_pipeline.ingest import rows
from fraud_pipeline.ingest.extract import UNSTORABLE
from fraud_pipeline.schema import CATEGORIES, PAYMENT_COLUMNS

MAX_TEXT = 200
MAX_AMOUNT = 1_000_000.0
REQUIRED: Final = (
    "trans_num",
    "trans_time",
    "card_token",
    "card_last4",
    "merchant",
    "category",
    "amt",
    "lat",
    "long",
    "merch_lat",
    "merch_long",
)
TEXT_COLUMNS: Final = ("merchant", "first", "last", "street", "city", "state", "zip", "job")


@dataclass
class Validated:
    good: pd.DataFrame  # schema.PAYMENT_COLUMNS, typed
    bad: pd.DataFrame  # the raw records (card masked) with a `reason` column


def _numeric(frame: pd.DataFrame, column: str) -> pd.Series:
    if column not in frame:
        return pd.Series(np.nan, index=frame.index)
    return pd.to_numeric(frame[column], errors="coerce").astype(float)


def _read_rows(records: pd.DataFrame, tz: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series]:
    """Per row: (rows that can be typed, rows that cannot with their `reason`, the former's
    event times in UTC)."""
    frame = records.reset_index(drop=True)
    known = rows.API_FIELDS | rows.DERIVED_FIELDS | set(PAYMENT_COLUMNS)
    unknown = [c for c in frame.columns if c not in known]
    if unknown:  # landed before extract dropped them: dropped here, never stored
        rows.log_unknown(sorted(map(str, unknown)))
        frame = frame.drop(columns=unknown)
    if "trans_time" not in frame and "trans_date_trans_time" in frame:
        frame["trans_time"] = frame["trans_date_trans_time"]
    frame = frame.drop(columns=["trans_date_trans_time", "unix_time"], errors="ignore")
    rejected = frame[rows.REJECTED].tolist() if rows.REJECTED in frame else [None] * len(frame)
    times, time_problems = rows.event_times(
        frame["trans_time"] if "trans_time" in frame else [None] * len(frame), tz
    )
    early: list[str | None] = []
    typed = rows.fields_typed(frame)  # the usual batch: no row to look at field by field
    records = [None] * len(frame) if typed else frame.to_dict(orient="records")
    for record, reject, time_problem in zip(records, rejected, time_problems, strict=True):
        if isinstance(reject, str):
            early.append(reject)
            continue
        problems = [] if record is None else rows.field_problems(record)
        if time_problem:
            problems.append(time_problem)
        early.append("; ".join(problems) or None)
    unreadable = pd.Series([r is not None for r in early], index=frame.index, dtype=bool)
    bad = frame[unreadable].copy()
    bad["reason"] = [r for r in early if r is not None]
    bad = bad.drop(columns=[rows.REJECTED], errors="ignore")
    readable = frame[~unreadable].drop(columns=[rows.REJECTED, rows.VALUE], errors="ignore")
    return (
        readable.reset_index(drop=True),
        bad,
        times[~unreadable.to_numpy()].reset_index(drop=True),
    )


def validate(
    records: pd.DataFrame, now: pd.Timestamp | None = None, tz: str | None = None
) -> Validated:
    """Split extracted records (card already tokenised) into typed good rows and bad rows."""
    now = now or pd.Timestamp(clock.now())
    frame, unreadable, times = _read_rows(records, tz or get_settings().business_tz)
    reasons = pd.Series([[] for _ in range(len(frame))], index=frame.index, dtype=object)

    def flag(mask: pd.Series | np.ndarray, reason: str) -> None:
        for i in np.flatnonzero(np.asarray(mask, dtype=bool)):
            reasons.iat[i].append(reason)

    if "card_masked" in frame:  # extract could not tokenise it: not a card number
        flag(frame["card_masked"].notna(), "card number invalid")
    for column in REQUIRED:
        if column not in frame:
            flag(np.ones(len(frame), bool), f"missing field {column}")
        else:
            flag(frame[column].isna(), f"missing {column}")
    trans_num = frame.get("trans_num", pd.Series("", index=frame.index)).astype(str)
    flag(
        ~trans_num.str.fullmatch(
            r"[A-Za-z0-9_\-*]{1,64}"
        ),  # *: a card-like run tokenised at extract
        "trans_num must be 1-64 letters, digits, -, _ or *",
    )
    flag(
        times.notna()
        & ((times < pd.Timestamp("2000-01-01", tz="UTC")) | (times > now + pd.Timedelta(days=1))),
        "trans_time out of range",
    )
    amt = _numeric(frame, "amt")
    flag(
        ~np.isfinite(amt) & frame.get("amt", pd.Series(index=frame.index)).notna(),
        "amt is not a finite number",
    )
    flag((amt <= 0) | (amt > MAX_AMOUNT), f"amt outside (0, {MAX_AMOUNT:,.0f}]")
    for lat, lon in (("lat", "long"), ("merch_lat", "merch_long")):
        la, lo = _numeric(frame, lat), _numeric(frame, lon)
        flag(
            ~la.between(-90, 90) & frame.get(lat, pd.Series(index=frame.index)).notna(),
            f"{lat} outside [-90, 90]",
        )
        flag(
            ~lo.between(-180, 180) & frame.get(lon, pd.Series(index=frame.index)).notna(),
            f"{lon} outside [-180, 180]",
        )
    if "category" in frame:
        flag(frame["category"].notna() & ~frame["category"].isin(CATEGORIES), "unknown category")
    if "gender" in frame:
        flag(frame["gender"].notna() & ~frame["gender"].isin(["F", "M"]), "gender must be F or M")
    city_pop = _numeric(frame, "city_pop")
    flag(
        frame.get("city_pop", pd.Series(index=frame.index)).notna()
        & ~((city_pop >= 0) & (city_pop < 1e9) & (city_pop % 1 == 0)),
        "city_pop must be a whole number >= 0",
    )
    dob = pd.to_datetime(frame.get("dob"), errors="coerce", format="ISO8601")
    local_day = times.dt.tz_localize(None)
    flag(
        frame.get("dob", pd.Series(index=frame.index)).notna()
        & (dob.isna() | (dob > local_day) | (dob < local_day - pd.Timedelta(days=365 * 120))),
        "dob unreadable or impossible",
    )
    label = _numeric(frame, "is_fraud")
    flag(
        frame.get("is_fraud", pd.Series(index=frame.index)).notna() & ~label.isin([0, 1]),
        "is_fraud must be 0 or 1",
    )
    for column in TEXT_COLUMNS:
        if column in frame:
            text = frame[column].astype(str)
            flag(text.str.len() > MAX_TEXT, f"{column} longer than {MAX_TEXT}")
            flag(text.str.contains(UNSTORABLE, regex=False), f"{column} has unstorable characters")
    if "card_last4" in frame:
        flag(
            frame["card_last4"].notna() & ~frame["card_last4"].astype(str).str.fullmatch(r"\d{4}"),
            "card number invalid",
        )

    # The same trans_num twice in one batch: identical copies are one payment; different
    # contents under one key cannot both be right, so every copy is quarantined.
    duplicated = trans_num.duplicated(keep=False)
    if duplicated.any():
        # map(str), not astype(str): pandas 3 keeps missing values as NaN, which join refuses.
        content = frame[duplicated].map(str).agg("|".join, axis=1)
        differs = content.groupby(trans_num[duplicated]).transform("nunique").gt(1)
        conflicting = duplicated & differs.reindex(frame.index, fill_value=False)
        flag(conflicting, "duplicate trans_num with different contents")
        frame = frame[~(duplicated & ~conflicting & trans_num.duplicated(keep="first"))]
        reasons = reasons.loc[frame.index]

    bad_mask = reasons.map(len) > 0
    bad = frame[bad_mask].copy()
    bad["reason"] = reasons[bad_mask].map("; ".join)
    if len(unreadable):
        bad = pd.concat([unreadable, bad], ignore_index=True) if len(bad) else unreadable
    good = frame[~bad_mask]
    return Validated(good=_typed(good, times.loc[good.index]), bad=bad)


def _typed(frame: pd.DataFrame, times: pd.Series) -> pd.DataFrame:
    out = pd.DataFrame(index=frame.index)
    for column in PAYMENT_COLUMNS:
        out[column] = frame.get(column, None)
    out["trans_time"] = times
    for column in ("amt", "lat", "long", "merch_lat", "merch_long"):
        out[column] = pd.to_numeric(out[column]).astype(float)
    out["city_pop"] = pd.to_numeric(out["city_pop"]).astype("Int64")
    out["is_fraud"] = pd.to_numeric(out["is_fraud"]).astype("Int64")
    for column in (
        "trans_num",
        "card_token",
        "card_last4",
        "merchant",
        "category",
        "gender",
        "zip",
    ):
        out[column] = out[column].astype("string")
    return out.reset_index(drop=True)
