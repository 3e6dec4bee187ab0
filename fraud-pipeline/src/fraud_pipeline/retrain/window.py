"""The recent window of payments_scored as labelled rows, featurised as they were scored.

A payment's label is the analysts' verdict in force where there is one (v_alert_verdicts: a
confirmed fraud is 1, a false alarm 0), else its `is_fraud`; payments with neither are left out.
Features are built like the pipeline's: the stored row plus its card's stored history
(storage.history), through the one `feature_frame`. The window is split by time: the challenger
learns from the earlier part, and both models are measured on the last days (the holdout), which
also hold cards the challenger never saw.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import numpy as np
import pandas as pd
import psycopg2.extensions
from psycopg2 import sql

from fraud_pipeline.model.features import FEATURE_COLUMNS, feature_frame
from fraud_pipeline.model.reviews import VERDICT_LABELS
from fraud_pipeline.schema import PAYMENT_COLUMNS
from fraud_pipeline.storage.history import load_batch_history, payment_columns, payments_frame

_SELECT_LABELLED: Final = sql.SQL(
    "SELECT {columns}, v.verdict FROM payments_scored p"
    " LEFT JOIN v_alert_verdicts v ON v.trans_num = p.trans_num"
    " WHERE p.trans_time >= %s AND p.trans_time < %s"
    " AND (v.verdict IS NOT NULL OR p.is_fraud IS NOT NULL)"
    " ORDER BY p.trans_time, p.trans_num"
).format(columns=payment_columns(PAYMENT_COLUMNS, "p"))


@dataclass(frozen=True)
class Window:
    """[start, end) of payments read; [holdout_start, end) is only measured on."""

    start: datetime
    holdout_start: datetime
    end: datetime

    @classmethod
    def ending(cls, end: datetime, days: int, holdout_days: int) -> Window:
        return cls(end - timedelta(days=days), end - timedelta(days=holdout_days), end)

    @classmethod
    def from_json(cls, data: dict[str, str]) -> Window:
        """The window `as_json` wrote (handed from one DAG task to the next)."""
        start, holdout, end = (data[k] for k in ("from", "holdout_from", "to"))
        return cls(*(datetime.fromisoformat(t) for t in (start, holdout, end)))

    def as_json(self) -> dict[str, str]:
        return {
            "from": self.start.isoformat(),
            "holdout_from": self.holdout_start.isoformat(),
            "to": self.end.isoformat(),
        }


@dataclass(frozen=True)
class LabelledPayments:
    """Payments (PAYMENT_COLUMNS + verdict), their features and labels, row for row."""

    payments: pd.DataFrame
    features: pd.DataFrame
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.payments)

    def _rows(self, keep: np.ndarray) -> LabelledPayments:
        return LabelledPayments(self.payments[keep], self.features[keep], self.labels[keep])

    def before(self, instant: datetime) -> LabelledPayments:
        return self._rows((self.payments["trans_time"] < instant).to_numpy())

    def since(self, instant: datetime) -> LabelledPayments:
        return self._rows((self.payments["trans_time"] >= instant).to_numpy())

    def outside(self, cards: Any, trans_nums: Any) -> LabelledPayments:
        """Only the rows on none of `cards` (card tokens) and none of `trans_nums`."""
        return self._rows(
            ~(
                self.payments["card_token"].isin(set(cards))
                | self.payments["trans_num"].isin(set(trans_nums))
            ).to_numpy()
        )

    def reviewed(self) -> np.ndarray:
        """Which rows an analyst's verdict labels (the rest: their `is_fraud`)."""
        return self.payments["verdict"].notna().to_numpy(dtype=bool)

    def verdict_counts(self) -> dict[str, int]:
        """How many rows each verdict labels: what the run's record says it used."""
        verdicts = self.payments["verdict"]
        return {verdict: int((verdicts == verdict).sum()) for verdict in VERDICT_LABELS}

    def on_cards_outside(self, other: LabelledPayments) -> np.ndarray:
        """Which rows are on a card `other` never has: new customers to whoever learnt `other`."""
        return ~self.payments["card_token"].isin(set(other.payments["card_token"])).to_numpy()

    def digest(self) -> str:
        """SHA-256 of the rows and labels: a part of the challenger's model version."""
        text = "\n".join(
            f"{t}\t{label}"
            for t, label in zip(self.payments["trans_num"], self.labels, strict=True)
        )
        return hashlib.sha256(text.encode()).hexdigest()


def load_labelled(conn: psycopg2.extensions.connection, window: Window) -> LabelledPayments:
    """Every labelled payment of `window`, featurised with its card's stored history."""
    with conn.cursor() as cur:
        cur.execute(_SELECT_LABELLED, (window.start, window.end))
        payments = payments_frame(cur.fetchall(), (*PAYMENT_COLUMNS, "verdict"))
    if payments.empty:
        return LabelledPayments(
            payments, pd.DataFrame(columns=list(FEATURE_COLUMNS)), np.zeros(0, int)
        )
    verdict = payments["verdict"].map(VERDICT_LABELS)
    labels = verdict.fillna(payments["is_fraud"].astype("Float64")).to_numpy(dtype=int)
    history = load_batch_history(conn, payments)
    return LabelledPayments(payments, feature_frame(payments, history), labels)


def stored_span(conn: psycopg2.extensions.connection) -> str:
    """What payments_scored holds, in a sentence: what a window that found nothing missed."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT count(*), min(p.trans_time), max(p.trans_time), count(*) FILTER (WHERE "
            "v.verdict IS NOT NULL OR p.is_fraud IS NOT NULL) FROM payments_scored p "
            "LEFT JOIN v_alert_verdicts v ON v.trans_num = p.trans_num"
        )
        count, first, last, labelled = cur.fetchone()
    if not count:
        return "payments_scored is empty: is the pipeline storing payments?"
    return (
        f"payments_scored holds {count:,} payments from {first.isoformat(timespec='minutes')} "
        f"to {last.isoformat(timespec='minutes')}, {labelled:,} of them labelled (is_fraud or "
        "an analyst's verdict): the window must cover labelled payments on both sides of its "
        "holdout start (RETRAIN_WINDOW_DAYS, RETRAIN_HOLDOUT_DAYS, or trigger with window_days)"
    )
