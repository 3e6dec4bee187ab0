"""The promotion gate: is the challenger better than the champion on the same recent payments?

It passes only if the challenger's PR-AUC beats the champion's by at least RETRAIN_MIN_PR_AUC_GAIN
and neither its precision nor its recall (each model at its own threshold) falls more than
RETRAIN_TOLERANCE below the champion's, on a holdout with at least RETRAIN_MIN_EVAL_FRAUDS
labelled frauds (fewer cannot tell two models apart). Bounds are inclusive: a gain exactly equal
to the margin, or a loss exactly equal to the tolerance, passes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from fraud_pipeline.config import Settings

# Figures are floats computed from counts: equal in decimal is equal here.
_EPSILON = 1e-9


@dataclass(frozen=True)
class Gate:
    min_pr_auc_gain: float
    tolerance: float
    min_frauds: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Gate:
        return cls(
            settings.retrain_min_pr_auc_gain,
            settings.retrain_tolerance,
            settings.retrain_min_eval_frauds,
        )

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Decision:
    passed: bool
    reason: str


def decide(gate: Gate, champion: dict[str, Any], challenger: dict[str, Any]) -> Decision:
    """Pass or fail, and why in a sentence, from both models' figures on the same payments
    (`binary_metrics`: pr_auc, precision, recall, n_fraud)."""
    frauds = int(challenger["n_fraud"])
    if frauds < gate.min_frauds:
        return Decision(
            False,
            f"not enough evidence: {frauds} labelled frauds in the evaluation window, "
            f"{gate.min_frauds} needed",
        )
    if champion["pr_auc"] is None or challenger["pr_auc"] is None:
        return Decision(False, "no PR-AUC: the evaluation window has no legitimate payment")
    gain = challenger["pr_auc"] - champion["pr_auc"]
    figures = (
        f"PR-AUC {challenger['pr_auc']:.4f} vs {champion['pr_auc']:.4f} ({gain:+.4f}), "
        f"precision {challenger['precision']:.4f} vs {champion['precision']:.4f}, "
        f"recall {challenger['recall']:.4f} vs {champion['recall']:.4f}"
    )
    failures = []
    if gain < gate.min_pr_auc_gain - _EPSILON:
        failures.append(f"PR-AUC gain {gain:+.4f} below the required {gate.min_pr_auc_gain:+.4f}")
    for name in ("precision", "recall"):
        loss = champion[name] - challenger[name]
        if loss > gate.tolerance + _EPSILON:
            failures.append(f"{name} down {loss:.4f}, more than the tolerance {gate.tolerance:.4f}")
    if failures:
        return Decision(False, f"stays challenger: {'; '.join(failures)} ({figures})")
    return Decision(True, f"passed the gate: {figures}")
