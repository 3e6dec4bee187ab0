"""`fraud-pipeline evaluate`: score any Sparkov CSV with the committed artifacts and measure it."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fraud_pipeline.ingest.payments import local_wall_clock, read_sparkov_csv, to_payments
from fraud_pipeline.model.artifacts import Model, load_model
from fraud_pipeline.model.metrics import binary_metrics
from fraud_pipeline.model.split import (
    UNSEEN_START,
    ValidationPart,
    cold_start_rows,
    row_groups,
    validation_run_rows,
)

# Parts of a file (model.split), measured again:
# - unseen-customers: the training file's held-out customers from their first payment
#   (test_new_customers);
# - known-customers-later: the training file's training customers from UNSEEN_START on, with
#   their earlier payments as history (test_known_customers_later);
# - validation-tune / validation-untouched: the validation run's (sparkov_validation_2020h1)
#   two halves by customer: the one training chose the model and threshold on, and the one
#   nothing reads but this measurement.
SPLITS = ("unseen-customers", "known-customers-later", "validation-tune", "validation-untouched")
# What `--out` writes beside the plots: one row per measured payment, and figures by month.
SCORES_FILE = "scores.parquet"
MONTHLY_FILE = "monthly.csv"
SCORE_COLUMNS = (
    "trans_num",
    "trans_time",
    "card_last4",
    "merchant",
    "category",
    "amt",
    "is_fraud",
    "score",
    "flagged",
)

JSON_KEYS = (
    "pr_auc",
    "roc_auc",
    "precision",
    "recall",
    "f1",
    "fpr",
    "threshold",
    "n",
    "n_fraud",
    "model_version",
)


def evaluate_file(
    path: Path, model: Model | None = None, since: str | None = None, split: str | None = None
) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """Metrics at the saved threshold, with the labels and scores they came from.

    With `since` (a wall-clock time, as in the file) only later payments are measured, but the
    earlier ones still feed the card-history features, as they would in production. With
    `split`, only one part of the file is measured (SPLITS, `_split_rows`).
    """
    metrics, scored = score_file(path, model, since, split)
    return metrics, scored["is_fraud"].to_numpy(dtype=int), scored["score"].to_numpy()


def score_file(
    path: Path, model: Model | None = None, since: str | None = None, split: str | None = None
) -> tuple[dict[str, Any], pd.DataFrame]:
    """`evaluate_file`'s metrics, and the measured payments with their scores (SCORE_COLUMNS,
    `trans_time` as the file's wall clock)."""
    model = model or load_model()
    raw = read_sparkov_csv(path)
    if "is_fraud" not in raw.columns:
        raise ValueError(f"{path}: evaluate needs the is_fraud label column")
    if split is not None:
        raw, since = _split_rows(raw, split, since)
        if raw.empty:
            raise ValueError(f"{path}: no payment in the split {split}")
    payments = to_payments(raw)
    score = model.predict(model.features(payments))
    if since is not None:
        measured = (local_wall_clock(payments["trans_time"]) >= pd.Timestamp(since)).to_numpy()
        if not measured.any():
            raise ValueError(f"{path}: no payment at or after {since}")
        payments, score = payments[measured], score[measured]
    label = payments["is_fraud"].to_numpy(dtype=int)
    metrics = binary_metrics(label, score, model.threshold)
    metrics["model_version"] = model.version
    scored = payments.assign(
        trans_time=local_wall_clock(payments["trans_time"]),
        is_fraud=label,
        score=score,
        flagged=score >= model.threshold,
    )
    return metrics, scored.loc[:, list(SCORE_COLUMNS)].reset_index(drop=True)


def monthly_figures(scored: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """`binary_metrics` of each calendar month of `scored` (`score_file`'s frame)."""
    rows = []
    for month, part in scored.groupby(scored["trans_time"].dt.strftime("%Y-%m"), sort=True):
        figures = binary_metrics(part["is_fraud"].to_numpy(), part["score"].to_numpy(), threshold)
        rows.append({"month": month, **figures})
    return pd.DataFrame(rows)


def write_scores(out_dir: Path, scored: pd.DataFrame, threshold: float) -> list[Path]:
    """The per-payment scores (Parquet) and the per-month figures (CSV) under `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    scores_path, monthly_path = out_dir / SCORES_FILE, out_dir / MONTHLY_FILE
    scored.to_parquet(scores_path, index=False)
    monthly_figures(scored, threshold).to_csv(monthly_path, index=False, float_format="%.6g")
    return [scores_path, monthly_path]


def _split_rows(
    raw: pd.DataFrame, split: str, since: str | None
) -> tuple[pd.DataFrame, str | None]:
    """The rows of `split` and the time measuring starts from.

    Unseen customers keep only their payments from their first one on: earlier rows are not
    history, the model meets them cold. Known customers keep all theirs, measured from UNSEEN_START.
    """
    if split == "unseen-customers":
        return raw[cold_start_rows(raw, "unseen")].reset_index(drop=True), since
    if split == "known-customers-later":
        return raw[row_groups(raw) == "train"].reset_index(drop=True), since or str(UNSEEN_START)
    if split in ("validation-tune", "validation-untouched"):
        part: ValidationPart = "tune" if split == "validation-tune" else "untouched"
        return raw[validation_run_rows(raw, part)].reset_index(drop=True), since
    raise ValueError(f"unknown split {split!r} (known: {', '.join(SPLITS)})")


def write_plots(
    out_dir: Path, metrics: dict[str, Any], label: np.ndarray, score: np.ndarray
) -> list[Path]:
    """PR curve and confusion matrix as PNG files."""
    import matplotlib  # heavy; only for the chart

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # heavy; only for the chart
    from sklearn.metrics import precision_recall_curve  # heavy; only when measuring

    out_dir.mkdir(parents=True, exist_ok=True)
    precision, recall, _ = precision_recall_curve(label, score)
    fig, ax = plt.subplots(figsize=(5, 4), dpi=120)
    ax.plot(recall, precision, color="#c0392b")
    ax.scatter(
        [metrics["recall"]],
        [metrics["precision"]],
        color="black",
        zorder=3,
        label=f"threshold {metrics['threshold']:.3f}",
    )
    ax.set(
        xlabel="recall",
        ylabel="precision",
        xlim=(0, 1.01),
        ylim=(0, 1.01),
        title=f"PR curve (PR-AUC {metrics['pr_auc']:.3f})",
    )
    ax.legend(loc="lower left")
    pr_path = out_dir / "pr_curve.png"
    fig.tight_layout()
    fig.savefig(pr_path)
    plt.close(fig)

    cells = np.array([[metrics["tn"], metrics["fp"]], [metrics["fn"], metrics["tp"]]])
    fig, ax = plt.subplots(figsize=(4, 3.6), dpi=120)
    ax.imshow(np.log1p(cells), cmap="Reds")
    for (i, j), value in np.ndenumerate(cells):
        ax.text(j, i, f"{value:,}", ha="center", va="center", fontsize=12)
    ax.set(
        xticks=[0, 1],
        yticks=[0, 1],
        xticklabels=["legit", "fraud"],
        yticklabels=["legit", "fraud"],
        xlabel="predicted",
        ylabel="actual",
        title="Confusion matrix",
    )
    cm_path = out_dir / "confusion_matrix.png"
    fig.tight_layout()
    fig.savefig(cm_path)
    plt.close(fig)
    return [pr_path, cm_path]


def main(
    *,
    data: str | Path,
    as_json: bool = False,
    since: str | None = None,
    split: str | None = None,
    out: str | Path | None = None,
) -> int:
    """`fraud-pipeline evaluate`: score the Sparkov CSV `data` and print its metrics.

    `as_json` prints one JSON object instead; `since` measures only payments from that time on
    (earlier ones give history); `split` measures one part of the training file (SPLITS);
    `out` is a directory for the PR-curve and confusion-matrix PNGs, the per-payment scores
    (SCORES_FILE) and the per-month figures (MONTHLY_FILE).
    """
    path = Path(data)
    if not path.exists():
        print(f"evaluate: {path} does not exist", file=sys.stderr)
        return 2
    try:
        metrics, scored = score_file(path, since=since, split=split)
    except ValueError as error:
        print(f"evaluate: {error}", file=sys.stderr)
        return 2
    if out:
        label, score = scored["is_fraud"].to_numpy(), scored["score"].to_numpy()
        write_plots(Path(out), metrics, label, score)
        write_scores(Path(out), scored, metrics["threshold"])
    if as_json:
        print(json.dumps({k: metrics[k] for k in JSON_KEYS}))
        return 0
    print(
        f"model {metrics['model_version']} on {path.name}: {metrics['n']:,} payments, "
        f"{metrics['n_fraud']:,} frauds" + (f" ({split})" if split else "")
    )
    print(f"PR-AUC {metrics['pr_auc']:.4f}  ROC-AUC {metrics['roc_auc']:.4f}")
    print(
        f"at threshold {metrics['threshold']:.4f}: precision {metrics['precision']:.4f}, "
        f"recall {metrics['recall']:.4f}, F1 {metrics['f1']:.4f}"
    )
    print(f"false-positive rate {metrics['fpr']:.4%}")
    print(f"TP {metrics['tp']:,}  FP {metrics['fp']:,}  FN {metrics['fn']:,}  TN {metrics['tn']:,}")
    months = monthly_figures(scored, metrics["threshold"])
    if len(months) > 1:
        print("by month:")
        for row in months.itertuples():
            print(
                f"  {row.month}: {row.n:,} payments, {row.n_fraud:,} frauds, PR-AUC "
                f"{row.pr_auc:.4f}, precision {row.precision:.4f}, recall {row.recall:.4f}"
            )
    if out:
        print(f"plots, {SCORES_FILE} and {MONTHLY_FILE} written to {out}")
    return 0
