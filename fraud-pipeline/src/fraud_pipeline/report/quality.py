"""Measured quality: how good the alerts were, from the analysts' verdicts and the true labels.

The model's offline figures say how it did on held-out data; these say how it does now. The
verdict in force per alert (`v_alert_verdicts`) gives the confirmed precision (confirmed /
reviewed); where the source carries its `is_fraud` label the true precision and recall sit next
to it. All read through `fraud_review_quality()` (migration 018), per model version.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date, timedelta
from typing import Final

import pandas as pd

from fraud_pipeline.report.queries import Db, _read, label_precision, label_recall
from fraud_pipeline.wording import format_count, format_percent

WINDOW_DAYS: Final = 30
ALL_MODELS: Final = "All models"


@dataclass(frozen=True)
class Quality:
    """One period's (and one model version's, or all's) alert counts."""

    model_version: str
    alerts: int = 0
    reviewed: int = 0
    confirmed: int = 0
    labelled: int = 0
    caught: int = 0
    false_alarms: int = 0
    missed: int = 0

    @property
    def confirmed_precision(self) -> float | None:
        """Confirmed frauds / reviewed alerts; None before any review."""
        return self.confirmed / self.reviewed if self.reviewed else None

    @property
    def label_precision(self) -> float | None:
        return label_precision(self.labelled, self.caught, self.false_alarms)

    @property
    def label_recall(self) -> float | None:
        return label_recall(self.labelled, self.caught, self.missed)

    def __add__(self, other: Quality) -> Quality:
        counts = {f.name: getattr(self, f.name) + getattr(other, f.name) for f in _COUNTS}
        return Quality(ALL_MODELS, **counts)


_COUNTS: Final = [f for f in fields(Quality) if f.name != "model_version"]


def quality(conn: Db, first_day: date, last_day: date) -> list[Quality]:
    """Per model version over business days first_day..last_day, then all versions together;
    the last item is always the whole period's (zeros when nothing was scored)."""
    rows = _read(
        conn, "SELECT * FROM fraud_review_quality(:first, :last)", first=first_day, last=last_day
    )
    per_model = [
        Quality(str(row["model_version"]), **{f.name: int(row[f.name]) for f in _COUNTS})
        for _, row in rows.iterrows()
    ]
    if len(per_model) == 1:  # one version: its line is the total
        return per_model
    return [*per_model, sum(per_model, Quality(ALL_MODELS))]


def day_and_window(conn: Db, day: date, days: int = WINDOW_DAYS) -> dict[str, list[Quality]]:
    """The report day's quality and the `days` days ending with it, keyed by a period label."""
    return {
        f"{day:%a %d %b}": quality(conn, day, day),
        f"{days} days": quality(conn, day - timedelta(days=days - 1), day),
    }


def quality_table(periods: dict[str, list[Quality]]) -> pd.DataFrame:
    """One line per period and model version, as the report shows it (and a CSV would)."""
    return pd.DataFrame(
        [
            {
                "Period": period,
                "Model": q.model_version,
                "Alerts": format_count(q.alerts),
                "Reviewed": format_count(q.reviewed),
                "Confirmed precision": format_percent(q.confirmed_precision),
                "Frauds confirmed": format_count(q.confirmed),
                "Label precision": format_percent(q.label_precision),
                "Label recall": format_percent(q.label_recall),
            }
            for period, rows in periods.items()
            for q in rows
        ]
    )
