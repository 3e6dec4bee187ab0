"""The Model health page's champion-against-challenger section: the shadow scores.

While a challenger is registered, the pipeline scores each payment with it too
(`pipeline/shadow.py`); this compares the two on the same payments, per business day: how many
were shadow-scored, the share each flagged, how often they agreed, and, on the payments whose
truth is known (an analyst's verdict, else the is_fraud label), each one's precision and recall.
Read as the report role, through `fraud_shadow_comparison(since, until)` (migration 020).
The pair compared is the current one (`fraud_model_roles()`, migration 030): the registry's
champion and the challenger registered last (the one shadow-scored), whatever pair of the span
has more payments or sorts first by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Final

import numpy as np
import pandas as pd

from fraud_pipeline.report.queries import Db, _read

HISTORY_DAYS: Final = 30
PAIR: Final = ["champion_version", "challenger_version"]
COUNTS: Final = [
    "shadowed",
    "champion_flagged",
    "challenger_flagged",
    "agreed",
    "labelled",
    "frauds",
    "champion_flagged_labelled",
    "champion_caught",
    "challenger_flagged_labelled",
    "challenger_caught",
]


def _share(part: pd.Series, whole: pd.Series) -> pd.Series:
    """part / whole, NaN where the whole is 0 (the day cannot tell)."""
    return part.astype(float) / whole.where(whole > 0).astype(float)


def with_rates(counts: pd.DataFrame) -> pd.DataFrame:
    """The counts plus what the page shows: flag shares, agreement, precision and recall."""
    out = counts.copy()
    out["agreement"] = _share(out["agreed"], out["shadowed"])
    for who in ("champion", "challenger"):
        out[f"{who}_flag_share"] = _share(out[f"{who}_flagged"], out["shadowed"])
        out[f"{who}_precision"] = _share(out[f"{who}_caught"], out[f"{who}_flagged_labelled"])
        out[f"{who}_recall"] = _share(out[f"{who}_caught"], out["frauds"])
    return out


def daily_comparison(conn: Db, until: date, days: int = HISTORY_DAYS) -> pd.DataFrame:
    """Per day and (champion, challenger) pair, the `days` days up to `until`, oldest first."""
    frame = _read(
        conn,
        "SELECT * FROM fraud_shadow_comparison(:since, :until)",
        since=until - timedelta(days=days),
        until=until,
    )
    if frame.empty:
        return frame
    frame["day"] = pd.to_datetime(frame["day"])
    frame[COUNTS] = frame[COUNTS].astype(np.int64)
    return with_rates(frame)


def totals(daily: pd.DataFrame) -> pd.DataFrame:
    """Each (champion, challenger) pair over the whole span, the most recent pair first."""
    if daily.empty:
        return daily
    summed = daily.groupby(PAIR, as_index=False).agg(
        **{name: (name, "sum") for name in COUNTS}, last_day=("day", "max")
    )
    return with_rates(summed).sort_values("last_day", ascending=False, ignore_index=True)


@dataclass(frozen=True)
class CurrentModels:
    """The registry's champion, the challenger registered last, and the model that scored the
    last stored payment (the served one); None where there is none."""

    champion: str | None
    challenger: str | None
    served: str | None
    served_at: datetime | None


def current_models(conn: Db) -> CurrentModels:
    roles = _read(conn, "SELECT * FROM fraud_model_roles()")
    served = _read(conn, "SELECT * FROM fraud_served_model()")

    def first(status: str) -> str | None:
        found = roles.loc[roles["status"] == status, "version"] if not roles.empty else roles
        return str(found.iat[0]) if len(found) else None

    last = served.iloc[0] if not served.empty else None
    return CurrentModels(
        first("champion"),
        first("challenger"),
        None if last is None else str(last["model_version"]),
        None if last is None else last["scored_at"],
    )


def current_pair(daily: pd.DataFrame, models: CurrentModels) -> pd.Series | None:
    """The span's totals of the current champion against the current challenger, or None when
    that pair has no shadow scores yet."""
    pairs = totals(daily)
    if pairs.empty:
        return None
    keep = np.ones(len(pairs), dtype=bool)
    if models.champion is not None:
        keep &= (pairs["champion_version"] == models.champion).to_numpy()
    if models.challenger is not None:
        keep &= (pairs["challenger_version"] == models.challenger).to_numpy()
    match = pairs[keep]
    return None if match.empty else match.iloc[0]
