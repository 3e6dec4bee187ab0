"""Test data built from real Sparkov rows (the committed Kaggle sample), never invented by hand."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache

import numpy as np
import pandas as pd

from fraud_pipeline.config import REPO_ROOT, get_settings
from fraud_pipeline.ingest.cards import tokenise_frame
from fraud_pipeline.schema import SPARKOV_COLUMNS

KAGGLE_HEAD = REPO_ROOT / "fraud-pipeline" / "data" / "sparkov_kaggle_fraudtest_head.csv.gz"
PUBLIC_SAMPLE = REPO_ROOT / "fraud-pipeline" / "data" / "sparkov_public_sample.csv.gz"


@lru_cache(maxsize=1)
def real_rows() -> pd.DataFrame:
    """The 5,116 real rows of the public Kaggle test file, as raw Sparkov records."""
    return pd.read_csv(KAGGLE_HEAD, dtype={"cc_num": str, "zip": str})[list(SPARKOV_COLUMNS)]


@lru_cache(maxsize=1)
def public_sample() -> pd.DataFrame:
    """The 52,175 real rows of the public Kaggle files (every fraud: 18.5%), as raw records."""
    return pd.read_csv(PUBLIC_SAMPLE, dtype={"cc_num": str, "zip": str})[list(SPARKOV_COLUMNS)]


def scored_payments(
    n: int,
    *,
    start: datetime | None = None,
    seed: int = 0,
    step_s: float = 7.0,
    rows: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """`n` real payments (cycled; `rows`, default the Kaggle head), re-timed from `start`,
    tokenised and given scores."""
    rng = np.random.default_rng(seed)
    raw = real_rows() if rows is None else rows.reset_index(drop=True)
    frame = raw.iloc[np.arange(n) % len(raw)].reset_index(drop=True)
    # Letters between the numbers: 12 digits in a row would be masked as a card number would.
    frame["trans_num"] = [f"s{seed:04d}-p{i:08d}" for i in range(n)]
    start = start or datetime(2026, 3, 28, 12, tzinfo=get_settings().tz)
    frame["trans_time"] = pd.Timestamp(start) + pd.to_timedelta(np.arange(n) * step_s, unit="s")
    key = get_settings().card_token_key.get_secret_value().encode()
    frame = tokenise_frame(frame, key)
    frame["fraud_probability"] = rng.random(n)
    frame["threshold"] = 0.5
    frame["is_fraud_pred"] = frame["fraud_probability"] >= 0.5
    frame["model_version"] = "test-model"
    frame["reasons"] = [[{"feature": "amt", "value": 2.0, "contribution": 1.0}] for _ in range(n)]
    frame["scored_at"] = pd.Timestamp("2026-03-28T12:00:00Z")
    return frame.drop(columns=["trans_date_trans_time", "unix_time", "card_masked"])
