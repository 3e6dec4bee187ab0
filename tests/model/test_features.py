"""One feature definition: offline (from the file) == online (PostgreSQL history + batch)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from fraud_pipeline.ingest.payments import read_sparkov_csv, to_payments
from fraud_pipeline.model.artifacts import load_model
from fraud_pipeline.model.features import (
    FEATURE_COLUMNS,
    NUMERIC,
    feature_frame,
    history_features,
)
from fraud_pipeline.model.train import GENERATED_FILE
from fraud_pipeline.schema import LOOKBACK, PAYMENT_COLUMNS
from fraud_pipeline.storage.history import load_card_history
from fraud_pipeline.storage.upsert import upsert_scored


@pytest.fixture(scope="module")
def weeks() -> pd.DataFrame:
    """Seven weeks of 120 cards of the generated year: longer than the 30-day lookback."""
    raw = read_sparkov_csv(GENERATED_FILE, nrows=90_000)
    cards = sorted(raw["cc_num"].unique())[::5][:120]
    payments = to_payments(raw[raw["cc_num"].isin(cards)].reset_index(drop=True))
    span = payments["trans_time"].max() - payments["trans_time"].min()
    assert span > LOOKBACK + pd.Timedelta(days=7)
    return payments


def _as_scored(batch: pd.DataFrame) -> pd.DataFrame:
    return batch.assign(
        fraud_probability=0.0,
        is_fraud_pred=False,
        threshold=0.5,
        model_version="parity",
        reasons=[[]] * len(batch),
        scored_at=pd.Timestamp.now(tz="UTC"),
    )


def test_online_features_equal_offline_batch_by_batch(conn, weeks):
    model = load_model()

    def features(batch: pd.DataFrame, history: pd.DataFrame | None = None) -> np.ndarray:
        """Every numeric feature, also the 30-day ones the model does not read (reasons, rules)."""
        return model.feature_table(batch, history)[0].loc[:, list(NUMERIC)].to_numpy(float)

    offline = features(weeks)
    offline_matrix = model.features(weeks)
    online = []
    # Batches of uneven size, in time order, as the per-minute DAG would see them.
    n = len(weeks)
    bounds = [0, n // 6, n // 6 + 1, n // 2, 3 * n // 4, n]
    for start, end in itertools.pairwise(bounds):
        batch = weeks.iloc[start:end]
        tokens = batch["card_token"].unique().tolist()
        history = load_card_history(conn, tokens, before=batch["trans_time"].min())
        first = batch["trans_time"].min()
        assert history["trans_time"].between(first - LOOKBACK, first, inclusive="left").all()
        assert tuple(history.columns) == PAYMENT_COLUMNS
        online.append(features(batch, history))
        # The batch form (cards from LOOKBACK before the batch to its end) gives the same.
        np.testing.assert_allclose(
            features(batch, load_card_history(conn, batch)), online[-1], atol=1e-6
        )
        # And so does the model's input, built from them.
        np.testing.assert_allclose(
            model.features(batch, history), offline_matrix[start:end], rtol=1e-6, atol=1e-6
        )
        upsert_scored(conn, _as_scored(batch))
    np.testing.assert_allclose(np.vstack(online), offline, rtol=1e-6, atol=1e-6)
    # Without the stored history the first batches' features would differ: history was used.
    later = slice(n // 2, 3 * n // 4)
    assert not np.allclose(features(weeks.iloc[later]), offline[later], atol=1e-6)
    assert offline[:, NUMERIC.index("card_count_30d")].max() > 40


def test_history_counts_only_earlier_payments_of_the_same_card(weeks):
    card = weeks["card_token"].value_counts().index[0]
    rows = weeks[weeks["card_token"] == card].head(6)
    features = history_features(rows)
    seconds = (rows["trans_time"] - rows["trans_time"].iloc[0]).dt.total_seconds().to_numpy()
    expected_24h = [int(np.sum(seconds[:i] > seconds[i] - 86_400)) for i in range(len(rows))]
    assert features["card_count_24h"].tolist() == expected_24h
    expected_sum = [
        rows["amt"].iloc[:i][seconds[:i] > seconds[i] - 86_400].sum() for i in range(len(rows))
    ]
    np.testing.assert_allclose(features["card_sum_24h"], expected_sum)
    assert features["secs_since_prev"].iloc[1] == pytest.approx(seconds[1] - seconds[0])


def test_the_episode_features_read_the_cards_24_hours_before(weeks):
    """Largest amount, night spending and the previous payment: earlier payments of the same
    card only, within the window (checked against a plain loop)."""
    card = weeks["card_token"].value_counts().index[0]
    rows = weeks[weeks["card_token"] == card].sort_values("trans_time").head(200)
    features = history_features(rows)
    seconds = (rows["trans_time"] - rows["trans_time"].iloc[0]).dt.total_seconds().to_numpy()
    amt = rows["amt"].to_numpy()
    night = features["prev_is_night"].shift(-1).to_numpy()  # row i's night flag, seen by i + 1
    for i in range(1, len(rows)):
        window = (seconds[:i] >= seconds[i] - 86_400) & (seconds[:i] <= seconds[i])
        assert features["card_max_amt_24h"].iloc[i] == pytest.approx(amt[:i][window].max(initial=0))
        assert features["prev_amt"].iloc[i] == amt[i - 1]
        if i < len(rows) - 1:
            night_sum = (amt[:i] * night[:i])[window].sum()
            assert features["card_night_sum_24h"].iloc[i] == pytest.approx(night_sum)
    assert features["card_max_amt_24h"].iloc[0] == features["prev_amt"].iloc[0] == 0


def test_feature_frame_has_the_declared_columns_in_order(weeks):
    frame = feature_frame(weeks.head(100))
    assert tuple(frame.columns) == FEATURE_COLUMNS
    assert not frame.select_dtypes("number").isna().any().any()
