"""Artifacts are verified before loading; the threshold is chosen as configured; reproducible."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fraud_pipeline.model.artifacts import ArtifactError, load_model, sha256_of
from fraud_pipeline.model.features import LONG_HISTORY
from fraud_pipeline.model.metrics import choose_threshold, rate_within_bound
from fraud_pipeline.model.reasons import top_reasons
from tests.support.factories import real_rows


def test_committed_artifacts_load_and_match_their_metadata():
    model = load_model()
    assert model.version.startswith("xgb-")
    assert 0 < model.threshold < 1
    assert len(model.feature_names) == model.booster.num_features()


def test_the_model_reads_no_feature_that_needs_30_days_of_history():
    """A card whose earlier payments the system did not see (a start loads one week) must not
    look suspicious for it: the 30-day features stay out of the model (README, Model)."""
    model = load_model()
    assert not set(LONG_HISTORY) & set(model.feature_names)
    assert "card_count_7d" in model.feature_names  # the week's history is still read


def test_the_real_rows_floor_is_an_upper_bound_not_the_measured_rate():
    """The saved threshold keeps the validation customers' real false alarms few enough that
    the exact 95% upper bound of their rate stays within the cap, not only the measured rate."""
    model = load_model()
    goal = model.metadata["threshold_goal"]
    real = model.metadata["metrics"]["validation_real_rows"]
    legitimate = real["fp"] + real["tn"]
    allowed = round(rate_within_bound(legitimate, goal["max_fpr_real"]) * legitimate)
    assert real["threshold"] == model.threshold >= goal["max_fpr_threshold"]
    assert real["fp"] <= allowed < goal["max_fpr_real"] * legitimate


def test_the_false_alarms_allowed_keep_the_upper_bound_within_the_cap():
    """Clopper-Pearson: k false alarms of n legitimate rows have a 95% upper bound of
    beta.ppf(0.95, k + 1, n - k); k = 0 gives 1 - 0.05 ** (1 / n) in closed form."""
    assert rate_within_bound(7_755, 0.003) * 7_755 == pytest.approx(15)  # not 23 (the rate)
    assert rate_within_bound(998, 0.003) == 0  # 1 - 0.05 ** (1 / 998) = 0.2997%: none allowed
    assert rate_within_bound(997, 0.003) == 0  # the bound of none is over the cap: still none
    assert rate_within_bound(0, 0.003) == 0
    rates = [rate_within_bound(n, 0.003) for n in (2_000, 10_000, 100_000, 1_000_000)]
    assert rates == sorted(rates) and 0.0027 < rates[-1] < 0.003  # more rows, closer to the cap
    assert rate_within_bound(10_000, 0.003, confidence=0.5) > rates[1]


def test_a_tampered_transformer_is_refused_before_unpickling(artifacts_copy):
    path = artifacts_copy / "preprocess.joblib"
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=r"preprocess\.joblib has SHA-256"):
        load_model(artifacts_copy)


def test_a_replaced_booster_is_refused(artifacts_copy):
    (artifacts_copy / "model.ubj").write_bytes(b"{}")
    with pytest.raises(ArtifactError, match="altered"):
        load_model(artifacts_copy)


def test_a_library_version_mismatch_is_refused(artifacts_copy):
    path = artifacts_copy / "metadata.json"
    metadata = json.loads(path.read_text())
    metadata["libraries"]["scikit-learn"] = "0.0.1"
    path.write_text(json.dumps(metadata))
    with pytest.raises(ArtifactError, match=r"scikit-learn 0\.0\.1"):
        load_model(artifacts_copy)


def test_the_sagemaker_tarball_holds_the_same_booster(artifacts_copy, tmp_path):
    import tarfile

    from fraud_pipeline.model.tarballs import safe_extractall

    with tarfile.open(artifacts_copy / "model.tar.gz") as tar:
        safe_extractall(tar, tmp_path / "x")
    assert sha256_of(tmp_path / "x" / "xgboost-model") == sha256_of(artifacts_copy / "model.ubj")


def _brute_force(label, score, accept):
    best, best_t = -1.0, None
    for t in np.unique(score):
        pred = score >= t
        tp, fp = np.sum(pred & (label == 1)), np.sum(pred & (label == 0))
        fn = np.sum(~pred & (label == 1))
        precision, recall = tp / max(tp + fp, 1), tp / max(tp + fn, 1)
        value = accept(precision, recall)
        if value is not None and value > best:
            best, best_t = value, t
    return best_t


def test_threshold_maximises_f1_or_recall_at_minimum_precision():
    rng = np.random.default_rng(1)
    label = (rng.random(3_000) < 0.05).astype(int)
    score = np.clip(rng.normal(0.3 + 0.4 * label, 0.15), 0, 1)
    f1 = _brute_force(label, score, lambda p, r: 2 * p * r / (p + r) if p + r else 0.0)
    assert choose_threshold(label, score, goal="f1") == pytest.approx(f1)
    at_p = _brute_force(label, score, lambda p, r: r if p >= 0.8 else None)
    chosen = choose_threshold(label, score, goal="recall_at_precision", min_precision=0.8)
    predicted = score >= chosen
    assert np.sum(predicted & (label == 1)) / predicted.sum() >= 0.8
    assert np.sum(score >= chosen) == np.sum(score >= at_p)
    with pytest.raises(ValueError, match=r"precision 1\.01"):
        choose_threshold(label, score, goal="recall_at_precision", min_precision=1.01)


def test_reasons_are_the_strongest_positive_contributions():
    import xgboost

    from fraud_pipeline.ingest.payments import to_payments

    model = load_model()
    payments = to_payments(real_rows().head(400))
    named, matrix = model.feature_table(payments)
    reasons = top_reasons(model, matrix, named, k=3)
    contribs = model.booster.predict(
        xgboost.DMatrix(matrix, feature_names=model.feature_names), pred_contribs=True
    )
    top_row = int(np.argmax(model.predict(matrix)))
    assert 1 <= len(reasons[top_row]) <= 3
    values = [r["contribution"] for r in reasons[top_row]]
    assert values == sorted(values, reverse=True) and values[0] > 0
    assert values[0] == pytest.approx(contribs[top_row, :-1].max(), abs=1e-4)
    assert {r["feature"] for r in reasons[top_row]} <= set(model.feature_names)
    assert all(r["contribution"] > 0 for row in reasons for r in row)
    assert top_reasons(model.booster, matrix, named, k=3) == reasons  # a bare booster too
