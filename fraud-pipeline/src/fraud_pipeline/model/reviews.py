"""Analysts' verdicts as labelled examples (`fraud-pipeline train --with-reviews`).

A verdict is a label the training files cannot have: a confirmed fraud is a fraud (1), a false
alarm a legitimate payment (0); only the verdict in force counts (v_alert_verdicts, the latest).

Each reviewed payment gets the features it was scored with, built like the training rows': its
payments_scored row is already in the one payment schema (schema.PAYMENT_COLUMNS, what
`to_payments` makes of a file row, `card_token` standing in for the card number as the card key),
and its card's history is the card's stored payments of the LOOKBACK before it
(storage.history), fed to the same `feature_frame` (tests/model/test_features.py proves that
stored history gives the offline numbers). Limitations:
- a card's history is what payments_scored holds: payments quarantined by validation, or older
  than what the database keeps, are missing from it (as they were when the payment was scored),
  whereas a training row's history is its whole file;
- a card is the same card in the files and in the database only if both were tokenised with the
  same CARD_TOKEN_KEY; a reviewed payment whose card the reported figures measure (or whose
  trans_num is a file row) is left out, so that nothing leaks into validation or test;
- only alerted payments are reviewed: the examples are the model's own high scores, not a
  sample of all payments (they teach the boundary, not the fraud rate).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pandas as pd
import psycopg2
import psycopg2.errors

from fraud_pipeline.model.features import FEATURE_COLUMNS, feature_frame
from fraud_pipeline.storage import db
from fraud_pipeline.storage.history import load_batch_history
from fraud_pipeline.storage.reviews import load_reviewed_payments

log = logging.getLogger(__name__)

VERDICT_LABELS: Final[dict[str, int]] = {"confirmed_fraud": 1, "false_alarm": 0}
CONNECT_TIMEOUT_S: Final = 10


class ReviewsUnavailable(RuntimeError):
    """The reviews cannot be read: the database is unreachable or not migrated."""


@dataclass(frozen=True)
class ReviewedExamples:
    """Reviewed payments (PAYMENT_COLUMNS + verdict, reviewed_at) and their features, row for row."""

    payments: pd.DataFrame
    features: pd.DataFrame

    @property
    def labels(self) -> np.ndarray:
        return self.payments["verdict"].map(VERDICT_LABELS).to_numpy(dtype=int)

    def __len__(self) -> int:
        return len(self.payments)

    def counts(self) -> dict[str, int]:
        """How many examples of each verdict (metadata.json's `reviewed_examples`)."""
        verdicts = self.payments["verdict"]
        return {verdict: int((verdicts == verdict).sum()) for verdict in VERDICT_LABELS}

    def ranges(self) -> dict[str, list[str] | None]:
        """When the payments were made and when they were reviewed (ISO, UTC)."""

        def span(times: pd.Series) -> list[str] | None:
            return [times.min().isoformat(), times.max().isoformat()] if len(times) else None

        return {
            "trans_time_range": span(self.payments["trans_time"]),
            "reviewed_at_range": span(self.payments["reviewed_at"]),
        }

    def digest(self) -> str:
        """SHA-256 of the examples (payment and verdict): a part of the model version."""
        text = "\n".join(
            f"{t}\t{v}"
            for t, v in zip(self.payments["trans_num"], self.payments["verdict"], strict=True)
        )
        return hashlib.sha256(text.encode()).hexdigest()

    def outside(self, cards: Any, trans_nums: Any) -> ReviewedExamples:
        """Only the examples on none of `cards` (card tokens) and none of `trans_nums`."""
        keep = ~(
            self.payments["card_token"].isin(set(cards))
            | self.payments["trans_num"].isin(set(trans_nums))
        ).to_numpy()
        return ReviewedExamples(self.payments[keep], self.features[keep])


def load_reviewed_examples(url: str | None = None) -> ReviewedExamples:
    """Every payment with a verdict in force, featurised with its card's stored history."""
    url = url or db.database_url()
    try:
        conn = db.connect(url, timeout_s=CONNECT_TIMEOUT_S)
    except psycopg2.OperationalError as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ReviewsUnavailable(
            f"--with-reviews: cannot reach PostgreSQL at {db.redact(url)} ({reason}): start it "
            "(`make run`) or set DATABASE_URL, or train without --with-reviews"
        ) from error
    try:
        log.info("reading reviewed payments from %s", db.redact(url))
        payments = load_reviewed_payments(conn)
        if payments.empty:
            return ReviewedExamples(payments, pd.DataFrame(columns=list(FEATURE_COLUMNS)))
        log.info("loading the history of %d reviewed payments' cards", len(payments))
        history = load_batch_history(conn, payments)
    except psycopg2.errors.UndefinedTable as error:
        raise ReviewsUnavailable(
            f"--with-reviews: {db.redact(url)} has no alert reviews (v_alert_verdicts): "
            "run `fraud-pipeline db migrate`"
        ) from error
    finally:
        conn.close()
    log.info(
        "featurising %d reviewed payments with %d stored payments", len(payments), len(history)
    )
    return ReviewedExamples(payments, feature_frame(payments, history))
