"""The Model health page's data: `model_health` (written by monitoring/health.py) over time.

Read as the report role, through `fraud_model_health(since, until)` (migration 017): like the
rest of the report, it reads no table. The model life cycle's history (model_events, every
training, gate verdict, promotion, rollback, retirement and failed switch) through
`fraud_model_events(since)` (migration 030).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Final

import pandas as pd

from fraud_pipeline import clock
from fraud_pipeline.report.queries import Db, _read

HISTORY_DAYS: Final = 90
# The charts of the page: title, the metrics drawn on it, how their values read.
CHARTS: Final[tuple[tuple[str, str, str], ...]] = (
    ("Drift of the score and top features (PSI)", "psi_", ".2f"),
    ("Share of payments flagged", "flag_share", ".2%"),
    ("Alert volume (payments flagged)", "alert_volume", ",.0f"),
    ("Share of payments quarantined", "quarantine_share", ".2%"),
    ("Confirmed precision of reviewed alerts (30 days)", "confirmed_precision", ".0%"),
)


EVENT_DAYS: Final = 180


def model_events(conn: Db, until: date, days: int = EVENT_DAYS) -> pd.DataFrame:
    """The model events of the `days` days up to `until` (and after), newest first."""
    return _read(
        conn,
        "SELECT * FROM fraud_model_events(:since)",
        since=clock.day_start(until - timedelta(days=days)),
    )


def health_history(conn: Db, until: date, days: int = HISTORY_DAYS) -> pd.DataFrame:
    """The figures of the `days` days up to `until`, oldest first."""
    frame = _read(
        conn,
        "SELECT * FROM fraud_model_health(:since, :until)",
        since=until - timedelta(days=days),
        until=until,
    )
    if not frame.empty:
        frame["day"] = pd.to_datetime(frame["day"])
        frame[["value", "threshold"]] = frame[["value", "threshold"]].astype(float)
    return frame


def chart_rows(history: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The rows of one chart: a metric, or every metric starting with it (`psi_`)."""
    if history.empty:
        return history
    chosen = (
        history["metric"].str.startswith(metric)
        if metric.endswith("_")
        else (history["metric"] == metric)
    )
    rows = history[chosen].copy()
    rows["series"] = rows["metric"].str.removeprefix("psi_")
    return rows


def latest(history: pd.DataFrame) -> pd.DataFrame:
    """The last computed day's figures (what the warning email was about)."""
    if history.empty:
        return history
    return history[history["day"] == history["day"].max()].reset_index(drop=True)


def not_judged(day: pd.DataFrame) -> list[str]:
    """The figures of a day measured but with no threshold: drift while less than the features'
    lookback is loaded (monitoring.health), the alert volume before any earlier day."""
    if day.empty:
        return []
    return sorted(day.loc[day["value"].notna() & day["threshold"].isna(), "metric"])
