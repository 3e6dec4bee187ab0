"""The generator: deterministic per window, and shaped like the real Sparkov rows."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from fraud_pipeline.generate import payments_between
from fraud_pipeline.metrics import binary_metrics
from fraud_pipeline.model import load_model
from fraud_pipeline.payments import local_wall_clock, read_sparkov_csv, to_payments
from fraud_pipeline.schema import SPARKOV_COLUMNS
from fraud_pipeline.train import GENERATED_FILE, REAL_FILE

NIGHT = [22, 23, 0, 1, 2, 3]


@pytest.fixture(scope="module")
def week() -> pd.DataFrame:
    return payments_between(datetime(2026, 3, 2), datetime(2026, 3, 9), rate_per_min=30)


@pytest.fixture(scope="module")
def real_legit() -> pd.DataFrame:
    real = read_sparkov_csv(REAL_FILE)
    return real[real["is_fraud"] == 0]


@pytest.fixture(scope="module")
def sparkov_year() -> pd.DataFrame:
    """The original Sparkov generator's year: every legitimate payment, not a sample."""
    return read_sparkov_csv(GENERATED_FILE)


def _total_variation(a: pd.Series, b: pd.Series) -> float:
    p, q = a.value_counts(normalize=True), b.value_counts(normalize=True)
    return 0.5 * float(p.subtract(q, fill_value=0).abs().sum())


def test_same_window_same_payments_and_windows_partition_the_stream():
    whole = payments_between(datetime(2026, 3, 2, 23), datetime(2026, 3, 3, 1), seed=7)
    again = payments_between(datetime(2026, 3, 2, 23), datetime(2026, 3, 3, 1), seed=7)
    halves = pd.concat(
        [
            payments_between(datetime(2026, 3, 2, 23), datetime(2026, 3, 3, 0, 17, 30), seed=7),
            payments_between(datetime(2026, 3, 3, 0, 17, 30), datetime(2026, 3, 3, 1), seed=7),
        ],
        ignore_index=True,
    )
    pd.testing.assert_frame_equal(whole, again)
    pd.testing.assert_frame_equal(whole, halves)
    assert whole["trans_num"].is_unique and len(whole) > 60
    other_seed = payments_between(datetime(2026, 3, 2, 23), datetime(2026, 3, 3, 1), seed=8)
    assert set(other_seed["trans_num"]).isdisjoint(whole["trans_num"])


def test_rows_are_sparkov_records(week):
    assert tuple(week.columns) == SPARKOV_COLUMNS
    assert week["cc_num"].str.fullmatch(r"\d{16}").all()
    times = pd.to_datetime(week["trans_date_trans_time"])
    assert times.is_monotonic_increasing
    assert times.min() >= pd.Timestamp("2026-03-02") and times.max() < pd.Timestamp("2026-03-09")


def test_distributions_match_the_real_rows(week, real_legit):
    legit = week[week["is_fraud"] == 0]
    # Category mix and hour profile: total variation distance under 0.1.
    assert _total_variation(legit["category"], real_legit["category"]) < 0.10
    hours = pd.to_datetime(legit["trans_date_trans_time"]).dt.hour
    real_hours = pd.to_datetime(real_legit["trans_date_trans_time"]).dt.hour
    assert _total_variation(hours, real_hours) < 0.10
    # Amount quantiles within 25% of the real ones.
    for q in (0.25, 0.5, 0.75, 0.9):
        assert legit["amt"].quantile(q) == pytest.approx(real_legit["amt"].quantile(q), rel=0.25)
    # Fraud: the real rate is 0.58% (training period) / 0.39% (test period).
    assert 0.003 <= week["is_fraud"].mean() <= 0.009


def test_fraud_looks_like_real_fraud(week):
    fraud = week[week["is_fraud"] == 1]
    night = pd.to_datetime(fraud["trans_date_trans_time"]).dt.hour.isin([22, 23, 0, 1, 2, 3])
    assert night.mean() > 0.7  # 86% in the data
    assert fraud["amt"].median() > 5 * week.loc[week["is_fraud"] == 0, "amt"].median()
    per_card = fraud.groupby("cc_num").size()
    assert per_card.median() >= 4  # bursts on a compromised card, not isolated payments
    top = fraud["category"].value_counts(normalize=True).head(4).index
    assert {"shopping_net", "grocery_pos"} <= set(top)


def test_cli_writes_a_readable_file(tmp_path):
    out = tmp_path / "payments.csv.gz"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "fraud_pipeline.cli",
            "generate",
            "--rows",
            "5000",
            "--seed",
            "3",
            "--end",
            "2026-03-03",
            "--out",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    frame = read_sparkov_csv(out)
    assert len(frame) == 5000 and np.isin(frame["is_fraud"], [0, 1]).all()


def _card_habits(rows: pd.DataFrame) -> dict[str, object]:
    """What the model's card-history features learnt about honest Sparkov cardholders."""
    times = pd.to_datetime(rows["trans_date_trans_time"])
    night = times.dt.hour.isin(NIGHT)
    legit = rows[rows["is_fraud"] == 0].assign(
        night=night, afternoon=times.dt.hour >= 12, week=times.dt.strftime("%G-%V")
    )
    card_week = legit.groupby(["cc_num", "week"])
    size = card_week.size()
    top_category = legit.groupby(["cc_num", "week", "category"]).size().groupby(level=[0, 1]).max()
    afternoon = card_week["afternoon"].mean()
    busy = size >= 5
    fraud_at_night = rows.loc[(rows["is_fraud"] == 1) & night, "amt"]
    return {
        "night_share": legit.groupby("category")["night"].mean(),
        "top_category_share": float((top_category / size)[busy].mean()),
        "main_daypart_share": float(np.maximum(afternoon, 1 - afternoon)[busy].mean()),
        "legit_night_amount": legit.loc[legit["night"], "amt"].quantile([0.5, 0.9]),
        "fraud_night_amount": float(fraud_at_night.median()),
    }


def test_cards_keep_sparkov_habits(week, sparkov_year):
    """Category, daypart and amount go together per card, as in the Sparkov data.

    Drawn independently, a generator makes honest night payments (small gas and grocery ones,
    a new category for the card) that the model rightly takes for card testing.
    """
    ours, real = _card_habits(week), _card_habits(sparkov_year)
    # Legitimate night share per category: gas and grocery a third, health and home a sixth.
    night_gap = ours["night_share"].subtract(real["night_share"]).abs()
    assert night_gap.max() < 0.04, night_gap.round(3).to_dict()
    # Within a week a card keeps to one category (95% of its payments) and one daypart (99%).
    assert ours["top_category_share"] == pytest.approx(real["top_category_share"], abs=0.03)
    assert ours["main_daypart_share"] == pytest.approx(real["main_daypart_share"], abs=0.02)
    # Night amounts: legitimate ones as in the data (within 15%), frauds far above them.
    np.testing.assert_allclose(ours["legit_night_amount"], real["legit_night_amount"], rtol=0.15)
    assert ours["fraud_night_amount"] > 5 * ours["legit_night_amount"].iloc[0]
    assert ours["fraud_night_amount"] == pytest.approx(real["fraud_night_amount"], rel=0.3)


def test_the_committed_model_sees_through_a_generated_week():
    """The model, trained on Sparkov's data only, does as well on ours (history from the week).

    A weekday: precision at the saved threshold depends on the day's frauds per payment, and
    Sparkov's weekends carry twice the weekdays' payments for the same frauds.
    """
    end = datetime(2026, 3, 11)
    model = load_model()
    payments = to_payments(payments_between(end - timedelta(days=7), end, rate_per_min=10))
    score = model.predict(model.features(payments))
    last_day = (local_wall_clock(payments["trans_time"]) >= end - timedelta(days=1)).to_numpy()
    label = payments["is_fraud"].to_numpy(dtype=int)[last_day]
    metrics = binary_metrics(label, score[last_day], model.threshold)
    assert metrics["n_fraud"] >= 30 and metrics["n"] > 8_000
    assert metrics["precision"] >= 0.7 and metrics["recall"] >= 0.8, metrics
