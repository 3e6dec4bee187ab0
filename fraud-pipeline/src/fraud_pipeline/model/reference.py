"""The training reference the monitor compares each day with, stored beside the model.

`monitor_reference.json` holds, for the score and the model's top features (by gain), the
reference's bin edges and the share of rows in each bin, plus the share it flagged. It is built
from the validation customers (new customers, cold start: what production sees) at train time,
or for already trained artifacts with `fraud-pipeline monitor build-reference`
(monitoring/build_reference.py), and listed with
its SHA-256 in metadata.json like every other artifact: the monitor reads only a verified one.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

from fraud_pipeline.model.checksums import ArtifactError, check_sha256, expected_sha256
from fraud_pipeline.model.features import NUMERIC
from fraud_pipeline.model.psi import bin_edges, shares

log = logging.getLogger(__name__)

REFERENCE_FILE: Final = "monitor_reference.json"
TOP_FEATURES: Final = 5
SCORE: Final = "score"


def top_features(booster: Any, count: int = TOP_FEATURES) -> list[str]:
    """The `count` model inputs with the highest total gain that are numeric feature columns
    (one-hot category columns have no distribution of their own to compare)."""
    gain = booster.get_score(importance_type="total_gain")
    ranked = sorted((name for name in gain if name in NUMERIC), key=lambda n: (-gain[n], n))
    return ranked[:count]


def distribution(values: Any) -> dict[str, list[float]]:
    edges = bin_edges(np.asarray(values, dtype=float))
    return {"edges": edges, "shares": shares(values, edges)}


def build_reference(
    features: pd.DataFrame,
    scores: np.ndarray,
    threshold: float,
    feature_names: list[str],
    source: str,
) -> dict[str, Any]:
    """The reference of these rows: bins and shares of the score and of `feature_names`."""
    scores = np.asarray(scores, dtype=float)
    return {
        "source": source,
        "rows": len(scores),
        "threshold": float(threshold),
        "flag_share": float(np.mean(scores >= threshold)) if len(scores) else 0.0,
        "features": list(feature_names),
        "distributions": {
            SCORE: distribution(scores),
            **{name: distribution(features[name]) for name in feature_names},
        },
    }


def to_bytes(reference: dict[str, Any]) -> bytes:
    """Stable bytes (sorted keys): the same rows give the same file and checksum."""
    return (json.dumps(reference, indent=2, sort_keys=True) + "\n").encode()


def load_reference(artifacts_dir: Path) -> dict[str, Any]:
    """The verified reference: refused when missing, unlisted or altered."""
    path = artifacts_dir / REFERENCE_FILE
    if not path.exists():
        raise ArtifactError(
            f"{path} is missing: run `fraud-pipeline monitor build-reference` (or `make train`)"
        )
    if expected_sha256(artifacts_dir, REFERENCE_FILE) is None:
        raise ArtifactError(f"{path} has no metadata.json beside it to vouch for it")
    check_sha256(artifacts_dir, REFERENCE_FILE)
    reference: dict[str, Any] = json.loads(path.read_bytes())
    return reference
