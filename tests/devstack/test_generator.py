"""The generator: deterministic per window, new customers, with the training year's habits."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from fraud_devstack.stack.generate import MIN_CARDS, PROFILES, derive_profiles, payments_between
from fraud_pipeline.ingest.payments import read_sparkov_csv
from fraud_pipeline.model.features import NIGHT_HOURS
from fraud_pipeline.model.train import GENERATED_FILE, REAL_FILE
from fraud_pipeline.schema import SPARKOV_COLUMNS


@pytest.fixture(scope="module")
def week() -> pd.DataFrame:
    return payments_between(datetime(2026, 3, 2), datetime(2026, 3, 9), rate_per_min=30)


@pytest.fixture(scope="module")
def real_legit() -> pd.DataFrame:
    real = read_sparkov_csv(REAL_FILE)
    return real[real["is_fraud"] == 0]


@pytest.fixture(scope="module")
def training_year() -> pd.DataFrame:
    return read_sparkov_csv(GENERATED_FILE)


def _card_weeks(frame: pd.DataFrame) -> pd.DataFrame:
    """Each card's habits over each week it paid at least 5 times (legitimate payments)."""
    legit = frame[frame["is_fraud"] == 0]
    times = pd.to_datetime(legit["trans_date_trans_time"])
    rows = pd.DataFrame(
        {
            "card": legit["cc_num"].to_numpy(),
            "week": ((times - pd.Timestamp("2000-01-03")).dt.days // 7).to_numpy(),
            "day": times.dt.normalize().to_numpy(),
            "category": legit["category"].to_numpy(),
            "night": times.dt.hour.isin(NIGHT_HOURS).to_numpy(),
            "log_amt": np.log(legit["amt"].to_numpy()),
        }
    )
    weeks = rows.groupby(["card", "week"])
    count = weeks.size()
    habits = pd.DataFrame(
        {
            "per_day": count / 7,
            "top_category_share": weeks["category"].agg(lambda c: c.value_counts().iloc[0]) / count,
            "night_share": weeks["night"].mean(),
            "amount_spread": weeks["log_amt"].std(),
        }
    )
    return habits[count >= 5]


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


def test_each_card_keeps_the_habits_of_a_training_card(week, training_year):
    """Per card and week, not only overall: how often it pays, how few categories it buys in
    (Sparkov cards buy in one category for weeks, then the next), how much at night, and how
    much its amounts vary."""
    ours, theirs = _card_weeks(week), _card_weeks(training_year)
    assert len(ours) > 10_000
    for q in (0.25, 0.5, 0.75, 0.9):
        assert ours["per_day"].quantile(q) == pytest.approx(theirs["per_day"].quantile(q), rel=0.2)
    for q in (0.1, 0.25, 0.5, 0.75, 0.9):
        for habit, tolerance in (
            ("top_category_share", 0.1),
            ("night_share", 0.05),
            ("amount_spread", 0.15),
        ):
            expected = theirs[habit].quantile(q)
            assert ours[habit].quantile(q) == pytest.approx(expected, abs=tolerance), (habit, q)


def _mixed_days(frame: pd.DataFrame) -> tuple[float, float]:
    """Of the card-days with two payments or more: the share spanning both halves of the day, and
    the share with more than one category."""
    legit = frame[frame["is_fraud"] == 0]
    times = pd.to_datetime(legit["trans_date_trans_time"])
    days = pd.DataFrame(
        {
            "card": legit["cc_num"].to_numpy(),
            "day": times.dt.normalize().to_numpy(),
            "morning": (times.dt.hour < 12).to_numpy(),
            "category": legit["category"].to_numpy(),
        }
    ).groupby(["card", "day"])
    several = days.size() >= 2
    return (
        float((days["morning"].nunique()[several] > 1).mean()),
        float((days["category"].nunique()[several] > 1).mean()),
    )


def test_a_card_buys_in_one_category_and_one_half_of_the_day_on_a_day(week, training_year):
    """Sparkov's days: 0.2% of a training card's days span morning and afternoon, 2% have two
    categories (the day it moves on to the next one)."""
    halves, categories = _mixed_days(week)
    real_halves, real_categories = _mixed_days(training_year)
    assert halves <= real_halves + 0.01 and categories <= real_categories + 0.03


def test_customers_are_new(week, training_year):
    """No card, person or address of the training file, and a profile table of pooled figures."""
    assert set(week["cc_num"]).isdisjoint(training_year["cc_num"])
    person = ["first", "last", "street", "dob"]
    people = week.drop_duplicates("cc_num")[person].merge(training_year[person].drop_duplicates())
    assert people.empty
    table = json.loads(PROFILES.read_text())
    assert "cc_num" not in PROFILES.read_text()
    assert all(profile["cards"] >= MIN_CARDS for profile in table["profiles"])
    # Customers of every profile, each profile with its own demographics.
    assert len({p["segment"] for p in table["profiles"]}) >= 4


def test_the_committed_profiles_are_learnt_from_the_training_year():
    assert derive_profiles() == json.loads(PROFILES.read_text())


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
            "fraud_devstack.cli",
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
