"""`fraud-pipeline tune`: each change tried against the final setting, on the validation run's
tune half.

The files are read and featurised once (`train.read_parts`); each variant is fitted as `train`
fits the model (`train.fit`: early stopping, calibration and the threshold on the tune half), by
default on one core, and printed as one row of a Markdown table: trees, booster size, then
PR-AUC, precision and recall at the variant's own threshold on the tune half, on its first month
(January 2020, every card new) and on the held-out customers of the training run, and the false
alarms in the tune half's complete windows when it is sampled like the public file
(`sampled_like_public`: what the real test period's first rows look like to the model). Nothing
here reads the validation run's untouched half (README, Model: the table of changes).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import pandas as pd

from fraud_pipeline.ingest.payments import local_wall_clock
from fraud_pipeline.model.features import LONG_HISTORY, MODEL_NUMERIC, NUMERIC, feature_frame
from fraud_pipeline.model.metrics import binary_metrics
from fraud_pipeline.model.train import (
    MONOTONE,
    PARAMS,
    REAL_WEIGHT,
    ROUNDS,
    Parts,
    fit,
    read_parts,
)

log = logging.getLogger(__name__)

EPISODE_7D: Final = ("card_max_amt_7d", "card_night_sum_7d", "prev_is_night")
EPISODE: Final = ("prev_amt", "card_max_amt_24h", "card_night_sum_24h", *EPISODE_7D)


@dataclass(frozen=True)
class Variant:
    """The final setting (`train.PARAMS`, the model's features, ROUNDS, replicas) with one
    change: features dropped, or others of the feature definition added."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    drop: tuple[str, ...] = ()
    add: tuple[str, ...] = ()
    rounds: int = ROUNDS
    replicas: bool = True
    real_weight: float = REAL_WEIGHT


VARIANTS: Final = (
    Variant("final setting"),
    Variant("final setting, seed 7 (the noise)", params={"seed": 7}),
    Variant("with the 30-day features (the previous setting)", add=LONG_HISTORY),
    Variant("without the episode features", drop=EPISODE),
    Variant("without the 7 d episode features and previous at night", drop=EPISODE_7D),
    Variant("without monotone constraints", params={"monotone_constraints": {}}),
    Variant(
        "monotone also on the 7 d features and previous at night",
        params={"monotone_constraints": {**MONOTONE, **dict.fromkeys(EPISODE_7D, 1)}},
    ),
    Variant("class weight 1", params={"scale_pos_weight": 1.0}),
    Variant("class weight 20", params={"scale_pos_weight": 20.0}),
    Variant("real rows weighed 3x (the previous setting)", real_weight=3.0),
    Variant("real rows weighed 0.5x", real_weight=0.5),
    Variant("eta 0.08, up to 600 trees (the previous speed)", params={"eta": 0.08}, rounds=600),
    Variant("eta 0.2", params={"eta": 0.2}),
    Variant("min_child_weight 6", params={"min_child_weight": 6}),
    Variant("colsample_bytree 0.6", params={"colsample_bytree": 0.6}),
    Variant("max_depth 7", params={"max_depth": 7}),
    Variant("max_depth 7, up to 140 trees", params={"max_depth": 7}, rounds=140),
    Variant("without the cold-start replicas", replicas=False),
)
COLUMNS: Final = (
    "trees",
    "KB",
    "PR-AUC",
    "precision",
    "recall",
    "Jan PR-AUC",
    "Jan precision",
    "Jan recall",
    "held-out PR-AUC",
    "window false alarms",
)
# The public file's shape (data/README.md): every fraud, complete windows (its first rows, and
# the test period's: 21-22 June 2020), and a small random share of the other legitimate rows.
WINDOW: Final = pd.Timedelta(hours=36)
WINDOW_EVERY: Final = pd.Timedelta(days=14)
SAMPLED_SHARE: Final = 0.015
SAMPLING_SEEDS: Final = (1, 2, 3, 4)


@dataclass(frozen=True)
class SampledWindows:
    """The tune half sampled like the public file, its features, and which of its rows are the
    windows' legitimate payments."""

    payments: pd.DataFrame
    frame: pd.DataFrame
    window_legitimate: np.ndarray


def sampled_like_public(payments: pd.DataFrame, seed: int) -> SampledWindows:
    """Every fraud, every payment of a WINDOW every WINDOW_EVERY (the first at noon, WINDOW_EVERY
    after the first day), and SAMPLED_SHARE of the other legitimate payments (seeded): cards
    whose complete day follows a history the file holds only in part, as in the real test
    period's first rows (from 12:14)."""
    times = local_wall_clock(payments["trans_time"])
    first = times.min().normalize() + WINDOW_EVERY + pd.Timedelta(hours=12)
    starts = pd.date_range(first, times.max(), freq=WINDOW_EVERY)
    in_window = np.zeros(len(payments), dtype=bool)
    for start in starts:
        in_window |= ((times >= start) & (times < start + WINDOW)).to_numpy()
    fraud = payments["is_fraud"].to_numpy() == 1
    drawn = np.random.default_rng(seed).random(len(payments)) < SAMPLED_SHARE
    keep = fraud | in_window | drawn
    kept = payments[keep].reset_index(drop=True)
    return SampledWindows(kept, feature_frame(kept), (in_window & ~fraud)[keep])


def measure(
    parts: Parts, windows: list[SampledWindows], variant: Variant, threads: int = 1
) -> dict[str, Any]:
    """Fit `variant` as `train` would and measure it (COLUMNS, and `threshold`)."""
    keep = np.ones(len(parts.train_frame), dtype=bool) if variant.replicas else ~parts.replica
    weight = parts.train_weight(variant.real_weight)
    fitted = fit(
        parts,
        parts.train_frame[keep],
        parts.train_label[keep],
        weight[keep],
        params={**PARAMS, "nthread": threads, **variant.params},
        numeric=tuple(
            c for c in NUMERIC if (c in MODEL_NUMERIC or c in variant.add) and c not in variant.drop
        ),
        rounds=variant.rounds,
    )
    label, score, january = parts.tune_label, fitted.tune_score, parts.tune_first_month
    whole = binary_metrics(label, score, fitted.threshold)
    first = binary_metrics(label[january], score[january], fitted.threshold)
    unseen = parts.cold["unseen"]["is_fraud"].to_numpy(dtype=int)
    held_out = binary_metrics(unseen, fitted.score(parts.cold_feat["unseen"]), fitted.threshold)
    alarms = [
        int(np.sum(fitted.score(w.frame)[w.window_legitimate] >= fitted.threshold)) for w in windows
    ]
    return {
        "trees": fitted.best,
        "KB": len(fitted.booster.save_raw(raw_format="ubj")) // 1024,
        "PR-AUC": whole["pr_auc"],
        "precision": whole["precision"],
        "recall": whole["recall"],
        "Jan PR-AUC": first["pr_auc"],
        "Jan precision": first["precision"],
        "Jan recall": first["recall"],
        "held-out PR-AUC": held_out["pr_auc"],
        "window false alarms": float(np.mean(alarms)),
        "threshold": fitted.threshold,
    }


def run(
    variants: Iterable[Variant] = VARIANTS, *, sample_rows: int | None = None, threads: int = 1
) -> Iterator[tuple[Variant, dict[str, Any]]]:
    """Each variant with its figures, the files featurised once."""
    parts = read_parts(sample_rows)
    log.info("sampling the tune half like the public file (%d seeds)", len(SAMPLING_SEEDS))
    windows = [sampled_like_public(parts.tune_pay, seed) for seed in SAMPLING_SEEDS]
    for variant in variants:
        log.info("fitting: %s", variant.name)
        yield variant, measure(parts, windows, variant, threads)


def _cell(value: Any, decimals: int) -> str:
    return f"{value:.{decimals}f}" if isinstance(value, float) else str(value)


def main(*, sample_rows: int | None = None, threads: int = 1) -> int:
    """`fraud-pipeline tune`: print the table of changes, one row as each variant is measured."""
    print("| change | " + " | ".join(COLUMNS) + " |", flush=True)
    print("|---" * (len(COLUMNS) + 1) + "|", flush=True)
    for variant, row in run(sample_rows=sample_rows, threads=threads):
        cells = [_cell(row[c], decimals=2 if c == "window false alarms" else 4) for c in COLUMNS]
        print(f"| {variant.name} | " + " | ".join(cells) + " |", flush=True)
    return 0
