"""The committed model meets the product's bar on data it never trained on; training reproduces."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime

import pandas as pd
import pytest

from fraud_devstack.stack.generate import payments_between
from fraud_pipeline.ingest.payments import local_wall_clock, read_sparkov_csv, to_payments
from fraud_pipeline.model.artifacts import load_model
from fraud_pipeline.model.evaluate import (
    JSON_KEYS,
    MONTHLY_FILE,
    SCORE_COLUMNS,
    SCORES_FILE,
    evaluate_file,
    monthly_figures,
    score_file,
)
from fraud_pipeline.model.features import feature_frame
from fraud_pipeline.model.metrics import recall_at_fpr
from fraud_pipeline.model.split import (
    COLD_DAYS,
    COLD_RESTARTS,
    UNSEEN_START,
    card_groups,
    cold_start_replicas,
    cold_start_rows,
    from_unseen_start,
    row_groups,
    validation_run_rows,
)
from fraud_pipeline.model.train import (
    GENERATED_FILE,
    REAL_FILE,
    REAL_TEST_START,
    VALIDATION_FILE,
    train,
)


@pytest.fixture(scope="module")
def generated_raw() -> pd.DataFrame:
    return read_sparkov_csv(GENERATED_FILE)


@pytest.fixture(scope="module")
def validation_raw() -> pd.DataFrame:
    return read_sparkov_csv(VALIDATION_FILE)


def test_the_split_is_by_customer_and_by_time(generated_raw):
    """No card on two sides; new customers start cold after everything training read."""
    raw = generated_raw
    groups = row_groups(raw)
    later = from_unseen_start(raw)
    times = pd.to_datetime(raw["trans_date_trans_time"])
    trained = raw[(groups == "train") & ~later]
    sides = {
        name: set(raw.loc[cold_start_rows(raw, name), "cc_num"])
        for name in ("validation", "unseen")
    }
    assert not set(trained["cc_num"]) & (sides["validation"] | sides["unseen"])
    assert not sides["validation"] & sides["unseen"]
    assert times[~later].max() < UNSEEN_START <= times[cold_start_rows(raw, "unseen")].min()
    # Every card falls in exactly one group, the compromised ones spread over all three, so each
    # held-out side keeps a realistic fraud rate; the same file gives the same split.
    cards = card_groups(raw)
    assert set(cards.index) == set(raw["cc_num"]) and cards.equals(card_groups(raw.iloc[::-1]))
    unseen = raw[cold_start_rows(raw, "unseen")]
    assert 0.002 < unseen["is_fraud"].mean() < 0.01
    assert unseen["cc_num"].nunique() >= 150


def test_cold_start_replicas_are_training_cards_made_new(generated_raw):
    """Each replica is a training card's payments of one COLD_DAYS window before UNSEEN_START, on
    a card of its own whose history starts at the window: its first payment has none."""
    raw = generated_raw
    trained = (row_groups(raw) == "train") & ~from_unseen_start(raw)
    replicas = cold_start_replicas(raw, to_payments(raw), trained)
    card, restart = replicas["card_token"].str.rsplit("@", n=1, expand=True).T.to_numpy()
    assert set(card) <= set(to_payments(raw[trained])["card_token"])
    assert len(set(restart)) == len(COLD_RESTARTS) > 50
    start = pd.Series(pd.to_datetime(restart, format="%Y-%m-%dT%H"), index=replicas.index)
    wall_clock = local_wall_clock(replicas["trans_time"])
    assert ((wall_clock >= start) & (wall_clock < start + COLD_DAYS)).all()
    assert wall_clock.max() < UNSEEN_START
    assert replicas["is_fraud"].sum() > 1_000
    features = feature_frame(replicas)
    first = ~replicas.duplicated("card_token")  # rows are in time order per card
    assert (features.loc[first.to_numpy(), "card_count_30d"] == 0).all()
    assert features["card_count_30d"].max() < 7 * 24  # never more than a week of history


@pytest.mark.slow
def test_a_generated_week_of_new_customers_at_the_demo_rate(tmp_path):
    """The demo stream's week, every card cold at its start, at the saved threshold: the bar the
    morning report of `make run` is read against (README, Model)."""
    path = tmp_path / "week.csv"
    payments_between(datetime(2026, 3, 2), datetime(2026, 3, 9)).to_csv(path, index=False)
    metrics, _, _ = evaluate_file(path, load_model())
    assert metrics["n"] > 500_000 and metrics["n_fraud"] > 3_000
    assert metrics["threshold"] == load_model().threshold
    assert metrics["precision"] >= 0.85
    assert metrics["recall"] >= 0.85


@pytest.mark.slow
def test_metadata_reports_what_evaluate_measures_at_the_saved_threshold(generated_raw):
    """`evaluate --split unseen-customers` uses the saved threshold and gives the saved figures."""
    model = load_model()
    cards = card_groups(generated_raw).value_counts().to_dict()
    assert model.metadata["training_data"]["split"]["cards"] == cards
    metrics, _, _ = evaluate_file(GENERATED_FILE, model, split="unseen-customers")
    saved = model.metadata["metrics"]["test_new_customers"]
    assert metrics["threshold"] == model.threshold == saved["threshold"]
    for key in ("n", "n_fraud", "tp", "fp", "fn", "tn"):
        assert metrics[key] == saved[key], key
    for key in ("pr_auc", "roc_auc", "precision", "recall"):
        assert metrics[key] == pytest.approx(saved[key], abs=1e-9), key
    later, _, _ = evaluate_file(GENERATED_FILE, model, split="known-customers-later")
    known = model.metadata["metrics"]["test_known_customers_later"]
    assert [later[k] for k in ("n", "tp", "fp")] == [known[k] for k in ("n", "tp", "fp")]
    # The product's bar on customers the model never trained on, from their first payment.
    assert metrics["n_fraud"] > 250
    assert metrics["pr_auc"] >= 0.96
    assert metrics["precision"] >= 0.90
    assert metrics["recall"] >= 0.85


def test_real_public_test_period():
    """Real Kaggle rows from the public test period, at the saved threshold (fraud-enriched, so
    recall and the false-positive rate count, not precision); earlier rows give card history.
    Training never reads this period: its figures are not among metadata.json's. The product's
    limit is 0.5% false alarms; issue 31 asked for recall 0.95 at 0.3% (README, Model)."""
    model = load_model()
    assert "real_test_period" not in model.metadata["metrics"]
    metrics, label, score = evaluate_file(REAL_FILE, model, since=str(REAL_TEST_START))
    assert metrics["n_fraud"] == 2_145
    assert metrics["roc_auc"] >= 0.99
    assert metrics["threshold"] == model.threshold
    assert metrics["recall"] >= 0.95
    assert metrics["fpr"] <= 0.003
    assert recall_at_fpr(label, score, max_fpr=0.003)["recall_at_fpr"] >= 0.95


def test_validation_run_halves_are_disjoint_customers(validation_raw):
    """The validation run's tune half (model choice, early stopping, threshold) and its untouched
    half (only measured) share no card; each keeps about the run's fraud rate."""
    tune = validation_run_rows(validation_raw, "tune")
    untouched = validation_run_rows(validation_raw, "untouched")
    assert (tune ^ untouched).all()
    cards = [set(validation_raw.loc[rows, "cc_num"]) for rows in (tune, untouched)]
    assert not cards[0] & cards[1] and min(map(len, cards)) >= 350
    for rows in (tune, untouched):
        assert 0.004 < validation_raw.loc[rows, "is_fraud"].mean() < 0.008


@pytest.mark.slow
def test_the_validation_runs_untouched_half(validation_raw):
    """Issue 31's bar on customers of another run, that nothing read but this measurement: the
    whole half-year and its first month (every card new), at the saved threshold. The tune half
    gives what metadata.json saved."""
    model = load_model()
    saved = model.metadata["metrics"]["validation_run_tune"]
    tune, _, _ = evaluate_file(VALIDATION_FILE, model, split="validation-tune")
    assert [tune[k] for k in ("n", "tp", "fp", "fn")] == [saved[k] for k in ("n", "tp", "fp", "fn")]
    metrics, scored = score_file(VALIDATION_FILE, model, split="validation-untouched")
    assert metrics["n_fraud"] > 700
    assert metrics["pr_auc"] >= 0.965
    assert metrics["precision"] >= 0.90
    assert metrics["recall"] >= 0.88
    january = monthly_figures(scored, model.threshold).iloc[0]
    assert january["month"] == "2020-01"
    assert january["precision"] >= 0.85
    assert january["recall"] >= 0.80


def test_an_unknown_split_is_refused():
    with pytest.raises(ValueError, match="unknown split"):
        evaluate_file(GENERATED_FILE, split="random")


def test_evaluate_json_prints_exactly_one_object(tmp_path):
    data = tmp_path / "with_index.csv"
    # The Kaggle files carry a leading unnamed index column: it must be accepted.
    pd.read_csv(REAL_FILE, nrows=3_000, dtype=str).to_csv(data, index=True)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "fraud_pipeline.cli",
            "evaluate",
            "--data",
            str(data),
            "--json",
            "--out",
            str(tmp_path / "plots"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(out.stdout)
    assert tuple(result) == JSON_KEYS
    assert result["n"] == 3_000 and result["model_version"] == load_model().version
    assert {p.name for p in (tmp_path / "plots").iterdir()} == {
        "pr_curve.png",
        "confusion_matrix.png",
        SCORES_FILE,
        MONTHLY_FILE,
    }
    # One row per measured payment, with its score and decision; figures by month.
    scores = pd.read_parquet(tmp_path / "plots" / SCORES_FILE)
    assert tuple(scores.columns) == SCORE_COLUMNS and len(scores) == 3_000
    assert (scores["flagged"] == (scores["score"] >= load_model().threshold)).all()
    monthly = pd.read_csv(tmp_path / "plots" / MONTHLY_FILE)
    assert monthly["n"].sum() == 3_000 and monthly["month"].is_monotonic_increasing


def test_training_is_reproducible(tmp_path):
    first = train(tmp_path / "a", sample_rows=40_000)
    second = train(tmp_path / "b", sample_rows=40_000)
    assert first["metrics"] == second["metrics"]
    assert first["sha256"] == second["sha256"]  # byte-identical artifacts
    assert first["model_version"] == second["model_version"]


def test_since_measures_only_later_payments_but_keeps_their_history(tmp_path):
    data = tmp_path / "sample.csv"
    frame = pd.read_csv(REAL_FILE, nrows=3_000, dtype=str)
    frame.to_csv(data, index=False)
    times = pd.to_datetime(frame["trans_date_trans_time"])
    since = times.sort_values().iloc[2_000]
    later, _, later_scores = evaluate_file(data, since=str(since))
    whole, _, whole_scores = evaluate_file(data)
    assert later["n"] == int((times >= since).sum()) < whole["n"]
    # The same payments get the same scores: the earlier rows still count as card history.
    assert set(later_scores.round(9)) <= set(whole_scores.round(9))
    with pytest.raises(ValueError, match="no payment at or after"):
        evaluate_file(data, since="2100-01-01")
