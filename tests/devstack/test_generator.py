"""The generator: deterministic per window, and shaped like the real Sparkov rows."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from fraud_pipeline.devstack.generate import payments_between
from fraud_pipeline.ingest.payments import read_sparkov_csv
from fraud_pipeline.model.train import REAL_FILE
from fraud_pipeline.schema import SPARKOV_COLUMNS


@pytest.fixture(scope="module")
def week() -> pd.DataFrame:
    return payments_between(datetime(2026, 3, 2), datetime(2026, 3, 9), rate_per_min=30)


@pytest.fixture(scope="module")
def real_legit() -> pd.DataFrame:
    real = read_sparkov_csv(REAL_FILE)
    return real[real["is_fraud"] == 0]


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
