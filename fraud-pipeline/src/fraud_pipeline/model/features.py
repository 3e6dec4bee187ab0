"""The one feature definition, used identically by training, evaluation and the DAG.

Two kinds of features:
- row features, from the payment alone (amount, local hour, weekday, age, distance to the
  merchant, category, gender, city population);
- card-history features, from the same card's payments in the LOOKBACK window before it (counts
  and sums over 1 h / 24 h / 7 d / 30 d, time since the previous payment, amount against the card's
  usual amount, first time in this category, night-time activity);
- episode features, so that the small payments of a fraud episode score high too: the card's
  largest amount and its night spending in the 24 h and 7 d before, the previous payment's
  amount and whether it was at night.

History only ever looks back `LOOKBACK`, so the DAG computes exactly the offline numbers from the
card's last 30 days in PostgreSQL plus the current batch (proved by tests/model/test_features.py).
Rows are ordered by (card, time, trans_num) so that ties are broken the same way everywhere.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd

from fraud_pipeline.ingest.payments import local_wall_clock
from fraud_pipeline.schema import HISTORY_COLUMNS

WINDOWS: Final[dict[str, int]] = {"1h": 3_600, "24h": 86_400, "7d": 7 * 86_400, "30d": 30 * 86_400}
NIGHT_HOURS: Final = frozenset({22, 23, 0, 1, 2, 3})

CATEGORICAL: Final[tuple[str, ...]] = ("category", "gender")
ROW_NUMERIC: Final[tuple[str, ...]] = (
    "amt",
    "log_amt",
    "hour",
    "is_night",
    "weekday",
    "age",
    "distance_km",
    "log_city_pop",
)
# What a card's earlier payments give: these shift while less than LOOKBACK is loaded.
HISTORY_NUMERIC: Final[tuple[str, ...]] = (
    *(f"card_count_{w}" for w in WINDOWS),
    *(f"card_sum_{w}" for w in WINDOWS),
    "card_night_count_24h",
    "card_night_share_30d",
    "secs_since_prev",
    "amt_vs_card_mean_7d",
    "amt_vs_card_mean_30d",
    "new_category_7d",
    "card_category_count_24h",
    "card_category_share_30d",
    "amt_vs_card_category_mean_30d",
    "prev_amt",
    "prev_is_night",
    "card_max_amt_24h",
    "card_night_sum_24h",
    "card_max_amt_7d",
    "card_night_sum_7d",
)
NUMERIC: Final[tuple[str, ...]] = ROW_NUMERIC + HISTORY_NUMERIC
FEATURE_COLUMNS: Final[tuple[str, ...]] = NUMERIC + CATEGORICAL
# What needs a card's complete last 30 days. Computed (the reasons' baseline, the rules) but not
# given to the model: a card whose earlier payments the system did not see (the first weeks after
# a start, which loads one week of history; a sampled file) looks new over 30 days while its last
# day is complete, and these features raised false alarms in such windows (README, Model).
LONG_HISTORY: Final[tuple[str, ...]] = (
    "card_count_30d",
    "card_sum_30d",
    "card_night_share_30d",
    "amt_vs_card_mean_30d",
    "card_category_share_30d",
    "amt_vs_card_category_mean_30d",
)
MODEL_NUMERIC: Final[tuple[str, ...]] = tuple(c for c in NUMERIC if c not in LONG_HISTORY)


def _haversine_km(
    lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray
) -> np.ndarray:
    lat1, lon1, lat2, lon2 = (np.radians(a.astype(float)) for a in (lat1, lon1, lat2, lon2))
    a = (
        np.sin((lat2 - lat1) / 2) ** 2
        + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    )
    return 6371.0 * 2 * np.arcsin(np.sqrt(np.clip(a, 0, 1)))


def row_features(payments: pd.DataFrame) -> pd.DataFrame:
    """Features of each payment on its own."""
    local = local_wall_clock(payments["trans_time"])
    dob = pd.to_datetime(payments["dob"], errors="coerce")
    amt = payments["amt"].astype(float).to_numpy()
    hour = local.dt.hour.to_numpy()
    return pd.DataFrame(
        {
            "amt": amt,
            "log_amt": np.log1p(np.clip(amt, 0, None)),
            "hour": hour,
            "is_night": np.isin(hour, list(NIGHT_HOURS)).astype(float),
            "weekday": local.dt.day_of_week.to_numpy(),
            "age": ((local - dob).dt.days / 365.25).to_numpy(),
            "distance_km": _haversine_km(
                payments["lat"].to_numpy(),
                payments["long"].to_numpy(),
                payments["merch_lat"].to_numpy(),
                payments["merch_long"].to_numpy(),
            ),
            "log_city_pop": np.log1p(payments["city_pop"].astype(float).to_numpy()),
            "category": payments["category"].astype(str).to_numpy(),
            "gender": payments["gender"].astype(str).to_numpy(),
        },
        index=payments.index,
    )


def _prior_start(keys: np.ndarray, seconds: np.ndarray, window: int) -> np.ndarray:
    """Per row, the index of the first earlier row with the same key at most `window` s before.

    Rows must be sorted by (key, time); the current row itself is never counted.
    """
    # One sorted float key per row: (key, time) with time relative to the earliest row, and keys
    # spaced further apart than any window, so they stay exact far below 2**53.
    offset = seconds - seconds.min() if len(seconds) else seconds
    spacing = float(np.ceil(offset.max() if len(offset) else 0.0)) + window + 1.0
    combined = keys.astype(np.float64) * spacing + offset
    return np.searchsorted(combined, combined - window, side="left")


def _epoch_seconds(times: pd.Series) -> np.ndarray:
    return ((times - pd.Timestamp(0, tz="UTC")).dt.total_seconds()).to_numpy()


def history_features(payments: pd.DataFrame, history: pd.DataFrame | None = None) -> pd.DataFrame:
    """Card-history features of `payments`, from `history` (earlier payments) plus the batch.

    Offline, `history` is None and each payment's history comes from the frame itself.
    Online, `history` holds the cards' payments of the last LOOKBACK from PostgreSQL.
    """
    rows = payments[list(HISTORY_COLUMNS)].assign(_target=True, _order=np.arange(len(payments)))
    rows["trans_time"] = rows["trans_time"].dt.tz_convert("UTC")
    if history is not None and len(history):
        # As objects: pandas' Arrow-string isin is ~15x slower (a Python loop over the values).
        stored = history["trans_num"].astype(object).isin(payments["trans_num"].astype(object))
        past = history.loc[~stored, list(HISTORY_COLUMNS)]
        past = past.assign(trans_time=past["trans_time"].dt.tz_convert("UTC"))
        rows = pd.concat([rows, past.assign(_target=False, _order=-1)], ignore_index=True)
    rows = rows.assign(_seconds=_epoch_seconds(rows["trans_time"]))
    rows = rows.sort_values(["card_token", "_seconds", "trans_num"], kind="mergesort")

    card = pd.factorize(rows["card_token"])[0]
    seconds = rows["_seconds"].to_numpy()
    amt = rows["amt"].astype(float).to_numpy()
    night = np.isin(local_wall_clock(rows["trans_time"]).dt.hour, list(NIGHT_HOURS)).astype(float)
    position = np.arange(len(rows))
    csum_amt = np.concatenate([[0.0], np.cumsum(amt)])
    csum_night = np.concatenate([[0.0], np.cumsum(night)])

    out: dict[str, np.ndarray] = {}
    for name, window in WINDOWS.items():
        start = _prior_start(card, seconds, window)
        out[f"card_count_{name}"] = (position - start).astype(float)
        out[f"card_sum_{name}"] = csum_amt[position] - csum_amt[start]
    out["card_night_count_24h"] = (
        csum_night[position] - csum_night[_prior_start(card, seconds, WINDOWS["24h"])]
    )
    night_30d = csum_night[position] - csum_night[_prior_start(card, seconds, WINDOWS["30d"])]
    count_30d = out["card_count_30d"]
    out["card_night_share_30d"] = np.where(count_30d > 0, night_30d / np.maximum(count_30d, 1), -1)
    for name in ("7d", "30d"):
        out[f"amt_vs_card_mean_{name}"] = _ratio_to_mean(
            amt, out[f"card_sum_{name}"], out[f"card_count_{name}"]
        )
    seen = out["card_count_7d"] > 0
    previous = seconds - np.concatenate([[np.nan], seconds[:-1]])
    out["secs_since_prev"] = np.where(seen, np.minimum(previous, WINDOWS["7d"]), WINDOWS["7d"])
    # The previous payment (within 7 days, as secs_since_prev): its amount, and if at night.
    out["prev_amt"] = np.where(seen, np.concatenate([[0.0], amt[:-1]]), 0.0)
    out["prev_is_night"] = np.where(seen, np.concatenate([[0.0], night[:-1]]), 0.0)

    # The episode so far: the card's largest and its night spending in the 24 h / 7 d before.
    csum_night_amt = np.concatenate([[0.0], np.cumsum(amt * night)])
    for name in ("24h", "7d"):
        start = _prior_start(card, seconds, WINDOWS[name])
        out[f"card_max_amt_{name}"] = _window_max(amt, start, position)
        out[f"card_night_sum_{name}"] = csum_night_amt[position] - csum_night_amt[start]

    # Same card and category: re-sort by (card|category, time) and count earlier rows.
    card_category = pd.factorize(rows["card_token"] + "|" + rows["category"].astype(str))[0]
    order = np.lexsort((position, seconds, card_category))
    csum_sorted = np.concatenate([[0.0], np.cumsum(amt[order])])
    same: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name in ("24h", "7d", "30d"):
        start = _prior_start(card_category[order], seconds[order], WINDOWS[name])
        counts, sums = np.empty(len(rows)), np.empty(len(rows))
        counts[order] = position - start
        sums[order] = csum_sorted[position] - csum_sorted[start]
        same[name] = counts, sums
    out["new_category_7d"] = (same["7d"][0] == 0).astype(float)
    out["card_category_count_24h"] = same["24h"][0]
    out["card_category_share_30d"] = np.where(
        count_30d > 0, same["30d"][0] / np.maximum(count_30d, 1), -1
    )
    out["amt_vs_card_category_mean_30d"] = _ratio_to_mean(amt, same["30d"][1], same["30d"][0])

    result = pd.DataFrame(out).assign(
        _target=rows["_target"].to_numpy(), _order=rows["_order"].to_numpy()
    )
    result = result[result["_target"]].sort_values("_order")
    return result.drop(columns=["_target", "_order"]).set_axis(payments.index)


def _window_max(values: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Per row, max(values[start:end]) (0 for an empty range), with a sparse table of
    power-of-two ranges: as many levels as the longest range needs."""
    length = end - start
    out = np.zeros(len(values))
    longest = int(length.max()) if len(length) else 0
    if longest == 0:
        return out
    levels = [values.astype(float)]
    while 2 ** len(levels) <= longest:
        half = 2 ** (len(levels) - 1)
        last = levels[-1]
        levels.append(np.maximum(last, np.concatenate([last[half:], np.full(half, -np.inf)])))
    nonempty = length > 0
    level = np.zeros(len(values), dtype=int)
    level[nonempty] = np.floor(np.log2(length[nonempty])).astype(int)
    table = np.vstack(levels)
    left = table[level, start]
    right = table[level, np.maximum(end - 2**level, 0)]
    return np.where(nonempty, np.maximum(left, right), 0.0)


def _ratio_to_mean(amt: np.ndarray, total: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Amount over the mean of the earlier amounts (1 when there are none: nothing unusual)."""
    mean = total / np.maximum(count, 1)
    return np.where(count > 0, amt / np.maximum(mean, 0.01), 1.0)


def feature_frame(payments: pd.DataFrame, history: pd.DataFrame | None = None) -> pd.DataFrame:
    """All features, in FEATURE_COLUMNS order, one row per payment (same index)."""
    frame = pd.concat([row_features(payments), history_features(payments, history)], axis=1)
    return frame.loc[:, list(FEATURE_COLUMNS)]
