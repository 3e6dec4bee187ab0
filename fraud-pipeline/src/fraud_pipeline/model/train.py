"""`fraud-pipeline train`: XGBoost on the one feature definition, split by time, never at random.

Three windows of the generated year (`sparkov_train_2019.csv.gz`), in time order:
- train: January to September, plus the real Kaggle rows before the public test period
  (2020-06-21 12:14:25), weighted up because they are few;
- validation: October, for early stopping and the decision threshold (configured goal);
- test: November and December, only measured (never seen by training or any choice).
The real test period is only measured too. Same data and seed give the same model, metrics and
artifacts (`make train`).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from fraud_pipeline.config import PACKAGE_ROOT, get_settings
from fraud_pipeline.ingest.payments import read_sparkov_csv, to_payments
from fraud_pipeline.model.artifacts import save_model
from fraud_pipeline.model.features import CATEGORICAL, FEATURE_COLUMNS, NUMERIC, feature_frame
from fraud_pipeline.model.metrics import binary_metrics, choose_threshold, recall_at_fpr
from fraud_pipeline.schema import CATEGORIES

log = logging.getLogger(__name__)

DATA_DIR = PACKAGE_ROOT / "data"
GENERATED_FILE = DATA_DIR / "sparkov_train_2019.csv.gz"
REAL_FILE = DATA_DIR / "sparkov_public_sample.csv.gz"
REAL_TEST_START = pd.Timestamp("2020-06-21 12:14:25")
VALIDATION_START = pd.Timestamp("2019-10-01")
TEST_START = pd.Timestamp("2019-11-01")
REAL_WEIGHT = 3.0  # real rows are few; weigh them so the model also learns their shape

PARAMS: dict[str, Any] = {
    "objective": "binary:logistic",
    "eval_metric": "aucpr",
    "tree_method": "hist",
    "max_depth": 6,
    "eta": 0.08,
    "subsample": 0.9,
    "colsample_bytree": 0.8,
    "min_child_weight": 2,
    "scale_pos_weight": 5.0,
    "seed": 42,
    "nthread": 2,
}
ROUNDS = 600
EARLY_STOPPING = 40


@dataclass
class LabelledFeatures:
    frame: pd.DataFrame
    label: np.ndarray
    weight: np.ndarray


def labelled(path: Path, *, sample_rows: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Payments of a Sparkov file with their offline features (history from inside the file).

    `sample_rows` keeps about that many rows spread evenly over the whole period (quick runs).
    """
    raw = read_sparkov_csv(path)
    if sample_rows and sample_rows < len(raw):
        raw = raw.iloc[:: len(raw) // sample_rows].reset_index(drop=True)
    payments = to_payments(raw)
    return payments, feature_frame(payments)


def build_preprocess() -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder

    encoder = OneHotEncoder(
        categories=[list(CATEGORIES), ["F", "M"]],
        handle_unknown="ignore",
        sparse_output=False,
        dtype=np.float32,
    )
    return ColumnTransformer(
        [("num", "passthrough", list(NUMERIC)), ("cat", encoder, list(CATEGORICAL))],
        verbose_feature_names_out=False,
    )


def files_digest(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()


class _Progress:
    """A tqdm bar over boosting rounds (XGBoost callback)."""

    def __init__(self, total: int) -> None:
        import xgboost
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc="boosting", unit="round", leave=False, disable=None)

        class Callback(xgboost.callback.TrainingCallback):
            def after_iteration(inner, model: Any, epoch: int, evals_log: Any) -> bool:
                self.bar.update(1)
                return False

        self.callback = Callback()


def train(
    out_dir: Path,
    *,
    goal: Literal["f1", "recall_at_precision"] = "f1",
    min_precision: float = 0.9,
    sample_rows: int | None = None,
) -> dict[str, Any]:
    """Train, choose the threshold, measure, and write the artifacts; return the metadata."""
    import xgboost

    settings = get_settings()
    log.info("reading and featurising %s", GENERATED_FILE.name)
    gen_pay, gen_feat = labelled(GENERATED_FILE, sample_rows=sample_rows)
    log.info("reading and featurising %s", REAL_FILE.name)
    real_pay, real_feat = labelled(REAL_FILE, sample_rows=sample_rows and sample_rows // 4)

    gen_local = gen_pay["trans_time"].dt.tz_convert(settings.business_tz).dt.tz_localize(None)
    real_local = real_pay["trans_time"].dt.tz_convert(settings.business_tz).dt.tz_localize(None)
    gen_train = gen_local < VALIDATION_START
    gen_val = (gen_local >= VALIDATION_START) & (gen_local < TEST_START)
    gen_test = gen_local >= TEST_START
    real_train, real_test = real_local < REAL_TEST_START, real_local >= REAL_TEST_START

    train_frame = pd.concat([gen_feat[gen_train], real_feat[real_train]])
    train_label = np.concatenate([gen_pay.is_fraud[gen_train], real_pay.is_fraud[real_train]])
    train_weight = np.concatenate(
        [np.ones(gen_train.sum()), np.full(real_train.sum(), REAL_WEIGHT)]
    )

    preprocess = build_preprocess().fit(train_frame.loc[:, list(FEATURE_COLUMNS)])
    names = [str(n) for n in preprocess.get_feature_names_out()]

    def matrix(frame: pd.DataFrame, label: Any, weight: Any = None) -> xgboost.DMatrix:
        x = np.asarray(preprocess.transform(frame), dtype=np.float32)
        return xgboost.DMatrix(
            x, label=np.asarray(label, dtype=float), weight=weight, feature_names=names
        )

    dtrain = matrix(train_frame, train_label, train_weight)
    dval = matrix(gen_feat[gen_val], gen_pay.is_fraud[gen_val])
    progress = _Progress(ROUNDS)
    booster = xgboost.train(
        PARAMS,
        dtrain,
        num_boost_round=ROUNDS,
        evals=[(dval, "validation")],
        early_stopping_rounds=EARLY_STOPPING,
        verbose_eval=False,
        callbacks=[progress.callback],
    )
    progress.bar.close()
    best = booster.best_iteration + 1
    booster = booster[:best]

    val_label = gen_pay.is_fraud[gen_val].to_numpy(dtype=int)
    val_score = booster.predict(dval)
    threshold = choose_threshold(val_label, val_score, goal=goal, min_precision=min_precision)
    validation = binary_metrics(val_label, val_score, threshold)
    test_label = gen_pay.is_fraud[gen_test].to_numpy(dtype=int)
    test = binary_metrics(
        test_label, booster.predict(matrix(gen_feat[gen_test], test_label)), threshold
    )
    real_metrics: dict[str, Any] = {}
    if real_test.any():
        real_label = real_pay.is_fraud[real_test].to_numpy(dtype=int)
        real_score = booster.predict(matrix(real_feat[real_test], real_label))
        real_metrics = binary_metrics(real_label, real_score, threshold)
        real_metrics.update(recall_at_fpr(real_label, real_score, max_fpr=0.005))

    digest = files_digest([GENERATED_FILE, REAL_FILE])
    params_digest = hashlib.sha256(repr((PARAMS, best, sample_rows)).encode()).hexdigest()
    metadata = {
        "model_version": f"xgb-{digest[:8]}-{params_digest[:8]}",
        "threshold": threshold,
        "threshold_goal": {"goal": goal, "min_precision": min_precision},
        "feature_names": names,
        "feature_columns": list(FEATURE_COLUMNS),
        "training_data": {
            "files": [GENERATED_FILE.name, REAL_FILE.name],
            "sha256": digest,
            "generated_range": [str(gen_local.min()), str(gen_local.max())],
            "validation_start": str(VALIDATION_START),
            "test_start": str(TEST_START),
            "real_test_start": str(REAL_TEST_START),
            "rows_train": len(train_frame),
            "rows_validation": int(gen_val.sum()),
            "rows_test": int(gen_test.sum()),
        },
        "params": PARAMS,
        "best_iteration": best,
        "metrics": {
            "validation_generated": validation,
            "test_generated": test,
            "real_test_period": real_metrics,
        },
    }
    return save_model(out_dir, preprocess, booster, metadata)


def main(
    *,
    out: str | Path | None = None,
    goal: Literal["f1", "recall_at_precision"] = "f1",
    min_precision: float = 0.9,
    sample_rows: int | None = None,
) -> int:
    """`fraud-pipeline train`: train, write the artifacts to `out` (default ARTIFACTS_DIR), report.

    `goal` picks the decision threshold on the validation window; `min_precision` is the
    precision kept with `recall_at_precision`; `sample_rows` trains on the first N rows.
    """
    out_dir = Path(out or get_settings().artifacts_dir)
    metadata = train(out_dir, goal=goal, min_precision=min_precision, sample_rows=sample_rows)
    test = metadata["metrics"]["test_generated"]
    real = metadata["metrics"]["real_test_period"]
    print(f"model {metadata['model_version']} written to {out_dir}")
    print(f"threshold {metadata['threshold']:.4f} ({goal})")
    print(
        f"test (generated, from {TEST_START:%Y-%m-%d}, never seen): "
        + ", ".join(
            f"{k} {test[k]:.4f}" for k in ("pr_auc", "roc_auc", "precision", "recall", "f1")
        )
    )
    if real:
        print(
            f"real test period: roc_auc {real['roc_auc']:.4f}, "
            f"recall {real['recall_at_fpr']:.4f} at FPR {real['fpr_at_threshold']:.4f}"
        )
    return 0
