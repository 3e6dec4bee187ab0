"""The gate's figures on analysts' verdicts: measured on the holdout's reviewed payments only,
with the verdict as label, none of them among the rows the challenger learnt from."""

from __future__ import annotations

from datetime import datetime

import numpy as np

from fraud_pipeline.config import get_settings
from fraud_pipeline.model.artifacts import load_model
from fraud_pipeline.model.metrics import binary_metrics
from fraud_pipeline.retrain.evaluate import compare, scores
from fraud_pipeline.retrain.window import Window, load_labelled
from fraud_pipeline.storage.upsert import upsert_scored
from tests.support.factories import public_sample, scored_payments


def test_both_models_are_measured_on_the_verdicts_after_the_training_rows(conn):
    end = datetime(2026, 11, 23, 3, tzinfo=get_settings().tz)
    window = Window.ending(end, days=10, holdout_days=3)
    rows = public_sample().sample(400, random_state=3)
    payments = scored_payments(400, start=window.start, step_s=2_000.0, rows=rows)
    upsert_scored(conn, payments)
    late = payments[payments.trans_time >= window.holdout_start]
    # Verdicts on both sides of the holdout's start; in the holdout, against `is_fraud` too.
    reviews = [(t, "confirmed_fraud") for t in payments.trans_num[:3]]
    reviews += [(t, "false_alarm") for t in late.trans_num[late.is_fraud == 1][:2]]
    reviews += [(t, "confirmed_fraud") for t in late.trans_num[late.is_fraud == 0][:4]]
    with conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO alert_reviews (trans_num, verdict, analyst) VALUES (%s, %s, 'ana')",
            reviews,
        )

    labelled = load_labelled(conn, window)
    learn, holdout = labelled.before(window.holdout_start), labelled.since(window.holdout_start)
    assert learn.verdict_counts() == {"confirmed_fraud": 3, "false_alarm": 0}
    assert holdout.verdict_counts() == {"confirmed_fraud": 4, "false_alarm": 2}
    model = load_model()
    figures = compare(model, model, learn, holdout)

    reviewed = holdout.payments[holdout.reviewed()]
    assert not set(reviewed.trans_num) & set(learn.payments.trans_num)
    verdicts = dict(reviews)
    expected_labels = [int(verdicts[t] == "confirmed_fraud") for t in reviewed.trans_num]
    expected = binary_metrics(
        np.array(expected_labels), scores(model, holdout)[holdout.reviewed()], model.threshold
    )
    for role in ("champion", "challenger"):
        measured = figures[role]["verdicts"]
        assert measured["n"] == 6 and measured["n_fraud"] == 4
        assert {k: measured[k] for k in ("tp", "fp", "fn", "tn")} == {
            k: expected[k] for k in ("tp", "fp", "fn", "tn")
        }
        assert measured["pr_auc"] == expected["pr_auc"]
        assert figures[role]["all"]["n"] == len(holdout) > 6
