"""`fraud-pipeline tune` fits its final setting exactly as `train` does, and each change on it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fraud_pipeline.ingest.payments import local_wall_clock
from fraud_pipeline.model.features import MODEL_NUMERIC, NUMERIC
from fraud_pipeline.model.train import PARAMS, VALIDATION_FILE, labelled, train
from fraud_pipeline.model.tune import (
    EPISODE,
    SAMPLED_SHARE,
    VARIANTS,
    WINDOW,
    Variant,
    run,
    sampled_like_public,
)

SAMPLE_ROWS = 40_000


def test_the_final_setting_is_what_train_fits(tmp_path):
    metadata = train(tmp_path / "model", sample_rows=SAMPLE_ROWS)
    changed = Variant(
        "no episode, no replicas, no constraints",
        params={"monotone_constraints": {}},
        drop=EPISODE,
        replicas=False,
    )
    measured = run([VARIANTS[0], changed], sample_rows=SAMPLE_ROWS, threads=PARAMS["nthread"])
    rows = {variant.name: row for variant, row in measured}
    final = rows[VARIANTS[0].name]
    assert final["trees"] == metadata["best_iteration"]
    assert final["threshold"] == metadata["threshold"]
    saved = metadata["metrics"]["validation_run_tune"]
    assert final["PR-AUC"] == pytest.approx(saved["pr_auc"], abs=1e-12)
    assert 0 <= rows[changed.name]["PR-AUC"] <= 1 and rows[changed.name]["KB"] > 0
    assert final["window false alarms"] >= 0


def test_the_tune_half_is_sampled_like_the_public_file():
    _, payments = labelled(VALIDATION_FILE, sample_rows=60_000)
    sampled = sampled_like_public(payments, seed=1)
    kept = sampled.payments
    assert len(sampled.frame) == len(kept)
    assert (kept["is_fraud"] == 1).sum() == (payments["is_fraud"] == 1).sum()  # every fraud
    times = local_wall_clock(payments["trans_time"])
    window_rows = kept.loc[sampled.window_legitimate]
    assert (window_rows["is_fraud"] == 0).all()
    held = local_wall_clock(window_rows["trans_time"]).sort_values().reset_index(drop=True)
    windows = held.groupby((held.diff() > pd.Timedelta(days=7)).cumsum())
    assert windows.ngroups >= 10  # about every 14 days over half a year
    legitimate = times[payments["is_fraud"] == 0]
    for _, window in windows:
        assert window.max() - window.min() < WINDOW
        span = legitimate[(legitimate >= window.min()) & (legitimate <= window.max())]
        assert len(span) == len(window)  # every legitimate payment of its span
    others = (~sampled.window_legitimate & (kept["is_fraud"] == 0).to_numpy()).sum()
    outside = len(payments) - (payments["is_fraud"] == 1).sum() - sampled.window_legitimate.sum()
    assert others == pytest.approx(SAMPLED_SHARE * outside, rel=0.25)
    again = sampled_like_public(payments, seed=1)
    pd.testing.assert_frame_equal(again.payments, kept)
    other_seed = sampled_like_public(payments, seed=2).payments
    assert not np.array_equal(other_seed["trans_num"], kept["trans_num"])


def test_each_variant_names_one_change_on_known_features():
    names = [variant.name for variant in VARIANTS]
    assert len(set(names)) == len(names)
    assert VARIANTS[0] == Variant("final setting")
    for variant in VARIANTS:
        assert set(variant.drop) <= set(MODEL_NUMERIC)  # drops what the model reads
        assert set(variant.add) <= set(NUMERIC) - set(MODEL_NUMERIC)  # adds what it does not
        assert set(variant.params) <= set(PARAMS)
