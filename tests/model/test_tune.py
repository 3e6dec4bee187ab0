"""`fraud-pipeline tune` fits its final setting exactly as `train` does, and each change on it."""

from __future__ import annotations

import pytest

from fraud_pipeline.model.features import MODEL_NUMERIC, NUMERIC
from fraud_pipeline.model.train import PARAMS, train
from fraud_pipeline.model.tune import EPISODE, VARIANTS, Variant, run

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


def test_each_variant_names_one_change_on_known_features():
    names = [variant.name for variant in VARIANTS]
    assert len(set(names)) == len(names)
    assert VARIANTS[0] == Variant("final setting")
    for variant in VARIANTS:
        assert set(variant.drop) <= set(MODEL_NUMERIC)  # drops what the model reads
        assert set(variant.add) <= set(NUMERIC) - set(MODEL_NUMERIC)  # adds what it does not
        assert set(variant.params) <= set(PARAMS)
