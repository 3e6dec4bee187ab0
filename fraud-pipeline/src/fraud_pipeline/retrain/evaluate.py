"""Champion and challenger measured on the same out-of-time payments.

Both score the holdout (the window's last days) from the same features, each at its own saved
threshold; the figures are given for all its payments, for the cards the challenger never
trained on (new customers, the cold start where most false alarms come from), and for the
payments an analyst's verdict labels: verdicts the challenger did not train on, since the
holdout's payments are all after the ones it learnt from (`run._split`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fraud_pipeline.model.artifacts import Model
from fraud_pipeline.model.metrics import binary_metrics
from fraud_pipeline.retrain.window import LabelledPayments


def scores(model: Model, rows: LabelledPayments) -> np.ndarray:
    """The model's probabilities for `rows` (their features through its saved transformer)."""
    matrix = np.asarray(model.preprocess.transform(rows.features), dtype=np.float32)
    return model.predict(matrix)


def _json_safe(figures: dict[str, Any]) -> dict[str, Any]:
    """NaN (PR-AUC with one class only) as null: jsonb has no NaN."""
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in figures.items()}


def measure(
    model: Model, holdout: LabelledPayments, parts: dict[str, np.ndarray]
) -> dict[str, Any]:
    """The model's figures on the holdout: `all` payments, and each named part that has rows."""
    score = scores(model, holdout)
    figures: dict[str, Any] = {
        "model_version": model.version,
        "all": _json_safe(binary_metrics(holdout.labels, score, model.threshold)),
    }
    for name, rows in parts.items():
        if rows.any():
            figures[name] = _json_safe(
                binary_metrics(holdout.labels[rows], score[rows], model.threshold)
            )
    return figures


def compare(
    champion: Model, challenger: Model, trained_on: LabelledPayments, holdout: LabelledPayments
) -> dict[str, dict[str, Any]]:
    """Both models on the same holdout, keyed by role."""
    parts = {"new_cards": holdout.on_cards_outside(trained_on), "verdicts": holdout.reviewed()}
    return {
        "champion": measure(champion, holdout, parts),
        "challenger": measure(challenger, holdout, parts),
    }
