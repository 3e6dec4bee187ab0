"""The recent window as labelled rows: verdicts override `is_fraud`, unlabelled payments are left
out, features come from the card's stored history, and the holdout is split off by time."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from fraud_pipeline.config import get_settings
from fraud_pipeline.model.features import feature_frame
from fraud_pipeline.retrain.window import Window, load_labelled
from fraud_pipeline.storage.upsert import upsert_scored
from tests.support.factories import scored_payments


def test_the_window_labels_featurises_and_splits_stored_payments(conn):
    end = datetime(2026, 11, 23, 3, tzinfo=get_settings().tz)
    window = Window.ending(end, days=10, holdout_days=3)
    # 12 payments every 20 hours from 250 h before the end: the first is outside the window.
    payments = scored_payments(12, start=end - timedelta(hours=250), step_s=20 * 3600.0)
    payments["card_token"] = payments["card_token"].iloc[0]  # one card: history matters
    payments["is_fraud"] = pd.array([0, 0, 1, None, 0, 0, 0, 1, 0, 0, None, 0], dtype="Int64")
    upsert_scored(conn, payments)
    reviews = [  # a false alarm on a labelled fraud, a confirmed fraud on an unlabelled payment
        (payments.trans_num[7], "false_alarm"),
        (payments.trans_num[10], "confirmed_fraud"),
    ]
    with conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO alert_reviews (trans_num, verdict, analyst) VALUES (%s, %s, 'ana')",
            reviews,
        )

    rows = load_labelled(conn, window)
    inside = payments.iloc[1:].drop(index=3)  # out of the window; no label at all
    assert rows.payments["trans_num"].tolist() == inside["trans_num"].tolist()
    np.testing.assert_array_equal(rows.labels, [0, 1, 0, 0, 0, 0, 0, 0, 1, 0])
    # Features as scored: the stored row with all the card's earlier stored payments, the
    # unlabelled one included (history is what was stored, labelled or not).
    expected = feature_frame(inside.reset_index(drop=True), payments.iloc[[0, 3]])
    pd.testing.assert_frame_equal(
        rows.features.reset_index(drop=True), expected.reset_index(drop=True), check_dtype=False
    )

    learn, holdout = rows.before(window.holdout_start), rows.since(window.holdout_start)
    assert len(learn) + len(holdout) == len(rows)
    assert (learn.payments["trans_time"] < window.holdout_start).all()
    assert (holdout.payments["trans_time"] >= window.holdout_start).all() and len(holdout) == 3
    assert not holdout.on_cards_outside(learn).any()  # the same card: nobody new
    assert Window.from_json(window.as_json()) == window
    assert learn.digest() != rows.digest()
