"""Model quality figures shared by training and evaluation, and the threshold choice."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np


def binary_metrics(label: np.ndarray, score: np.ndarray, threshold: float) -> dict[str, Any]:
    """PR-AUC, ROC-AUC, and precision/recall/F1/false-positive rate with counts at `threshold`."""
    from sklearn.metrics import average_precision_score, roc_auc_score  # heavy; only when measuring

    label = np.asarray(label, dtype=int)
    predicted = np.asarray(score) >= threshold
    tp = int(np.sum(predicted & (label == 1)))
    fp = int(np.sum(predicted & (label == 0)))
    fn = int(np.sum(~predicted & (label == 1)))
    tn = int(np.sum(~predicted & (label == 0)))
    both = 0 < label.sum() < len(label)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {
        "pr_auc": float(average_precision_score(label, score)) if both else float("nan"),
        "roc_auc": float(roc_auc_score(label, score)) if both else float("nan"),
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "fpr": fp / (fp + tn) if fp + tn else 0.0,
        "threshold": float(threshold),
        "n": len(label),
        "n_fraud": int(label.sum()),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
    }


def choose_threshold(
    label: np.ndarray,
    score: np.ndarray,
    *,
    goal: Literal["f1", "recall_at_precision"] = "f1",
    min_precision: float = 0.9,
) -> float:
    """The decision threshold that maximises F1, or recall subject to a minimum precision."""
    from sklearn.metrics import precision_recall_curve  # heavy; only when measuring

    precision, recall, thresholds = precision_recall_curve(label, score)
    precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
    if goal == "f1":
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0)
        return float(thresholds[int(np.argmax(f1))])
    allowed = precision >= min_precision
    if not allowed.any():
        raise ValueError(f"no threshold reaches precision {min_precision} on the validation data")
    best = np.flatnonzero(allowed)[np.argmax(recall[allowed])]
    return float(thresholds[best])


def recall_at_fpr(label: np.ndarray, score: np.ndarray, *, max_fpr: float) -> dict[str, float]:
    """The best recall reachable while the false-positive rate stays at most `max_fpr`."""
    from sklearn.metrics import roc_curve  # heavy; only when measuring

    fpr, tpr, thresholds = roc_curve(label, score)
    ok = np.flatnonzero(fpr <= max_fpr)
    best = ok[np.argmax(tpr[ok])]
    return {
        "recall_at_fpr": float(tpr[best]),
        "fpr_at_threshold": float(fpr[best]),
        "max_fpr": max_fpr,
        "threshold_at_fpr": float(thresholds[best]),
    }


def rate_within_bound(legitimate: int, cap: float, confidence: float = 0.95) -> float:
    """The highest false-positive rate k/n on `legitimate` rows whose exact one-sided upper bound
    (Clopper-Pearson, `confidence`) stays within `cap`.

    A threshold set where the measured rate just meets the cap exceeds it on a fresh sample about
    half the time; allowing only this many false alarms keeps the true rate within the cap.
    """
    from scipy.stats import beta  # heavy; only when measuring

    def upper_bound(false_alarms: int) -> float:
        return float(beta.ppf(confidence, false_alarms + 1, legitimate - false_alarms))

    if legitimate == 0 or upper_bound(0) > cap:
        return 0.0
    allowed = 0
    while allowed + 1 < legitimate and upper_bound(allowed + 1) <= cap:
        allowed += 1
    return allowed / legitimate


def calibration(label: np.ndarray, score: np.ndarray, bins: int = 10) -> dict[str, float]:
    """How far probabilities are from the observed fraud rates: the mean score beside the fraud
    rate, the Brier score, and the expected calibration error over `bins` equal-width bins."""
    label = np.asarray(label, dtype=float)
    score = np.asarray(score, dtype=float)
    which = np.minimum((score * bins).astype(int), bins - 1)
    error = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            error += inside.mean() * abs(score[inside].mean() - label[inside].mean())
    return {
        "mean_score": float(score.mean()),
        "fraud_rate": float(label.mean()),
        "brier": float(np.mean((score - label) ** 2)),
        "expected_calibration_error": float(error),
    }
