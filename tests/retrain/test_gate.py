"""The promotion gate's decisions at its edges: a gain equal to the margin passes, a hair less
fails; a loss equal to the tolerance passes, a hair more fails; too few frauds decide nothing."""

from __future__ import annotations

import pytest

from fraud_pipeline.config import Settings
from fraud_pipeline.retrain.gate import Gate, decide

GATE = Gate(min_pr_auc_gain=0.25, tolerance=0.125, min_frauds=10)


def figures(pr_auc: float | None, precision: float, recall: float, frauds: int = 40) -> dict:
    return {"pr_auc": pr_auc, "precision": precision, "recall": recall, "n_fraud": frauds}


CHAMPION = figures(0.5, 0.75, 0.625)


@pytest.mark.parametrize(
    ("challenger", "passed", "said"),
    [
        (figures(0.75, 0.75, 0.625), True, "passed the gate: PR-AUC 0.7500 vs 0.5000 (+0.2500)"),
        (figures(0.7499, 0.75, 0.625), False, "PR-AUC gain +0.2499 below the required +0.2500"),
        (figures(0.75, 0.625, 0.5), True, "passed the gate"),  # both down by the tolerance
        (figures(0.75, 0.6249, 0.625), False, "precision down 0.1251, more than the tolerance"),
        (figures(0.75, 0.75, 0.4999), False, "recall down 0.1251, more than the tolerance"),
        (figures(0.9, 1.0, 1.0, frauds=9), False, "9 labelled frauds in the evaluation window"),
        (figures(0.75, 0.75, 0.625, frauds=10), True, "passed the gate"),
        (figures(None, 0.0, 1.0), False, "no PR-AUC"),
    ],
)
def test_the_gate_at_its_edges(challenger: dict, passed: bool, said: str) -> None:
    decision = decide(GATE, CHAMPION, challenger)
    assert decision.passed is passed
    assert said in decision.reason


def test_a_failing_challenger_is_told_every_reason_with_the_figures() -> None:
    decision = decide(GATE, CHAMPION, figures(0.4, 0.5, 0.25))
    assert not decision.passed
    assert decision.reason.startswith("stays challenger: PR-AUC gain -0.1000")
    assert "precision down 0.2500" in decision.reason and "recall down 0.3750" in decision.reason
    assert "precision 0.5000 vs 0.7500, recall 0.2500 vs 0.6250" in decision.reason


def test_a_negative_margin_and_full_tolerance_let_any_measured_challenger_pass() -> None:
    lenient = Gate(min_pr_auc_gain=-1.0, tolerance=1.0, min_frauds=1)
    assert decide(lenient, figures(1.0, 1.0, 1.0), figures(0.0, 0.0, 0.0)).passed
    impossible = Gate(min_pr_auc_gain=1.0, tolerance=0.0, min_frauds=1)
    assert not decide(impossible, figures(0.0, 0.0, 0.0), figures(0.99, 1.0, 1.0)).passed


def test_the_gate_reads_its_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETRAIN_MIN_PR_AUC_GAIN", "0.03")
    monkeypatch.setenv("RETRAIN_TOLERANCE", "0.01")
    monkeypatch.setenv("RETRAIN_MIN_EVAL_FRAUDS", "5")
    assert Gate.from_settings(Settings()) == Gate(0.03, 0.01, 5)
    monkeypatch.setenv("RETRAIN_HOLDOUT_DAYS", "28")
    with pytest.raises(ValueError, match="leaves nothing to train on"):
        Settings()
