"""`fraud-pipeline monitor build-reference`: the monitor's reference for already trained
artifacts, built as `train` builds it (model/reference.py) from the same validation customers.

It needs the training data and code (model.train), which the reference itself must not: training
writes the reference, so the reference module sits below training and this command above both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fraud_pipeline.config import get_settings
from fraud_pipeline.model.artifacts import load_model, record_artifact
from fraud_pipeline.model.features import feature_frame
from fraud_pipeline.model.reference import REFERENCE_FILE, build_reference, to_bytes, top_features
from fraud_pipeline.model.split import cold_start_rows
from fraud_pipeline.model.train import GENERATED_FILE, labelled


def build_for_artifacts(artifacts_dir: Path) -> dict[str, Any]:
    """Build the reference of already trained artifacts from their validation customers (as
    `train` does) and record it beside them; the other artifacts stay byte for byte."""
    model = load_model(artifacts_dir, rebuilding=REFERENCE_FILE)
    raw, payments = labelled(GENERATED_FILE)
    cold = payments[cold_start_rows(raw, "validation")].reset_index(drop=True)
    features = feature_frame(cold)
    matrix = np.asarray(model.preprocess.transform(features), dtype=np.float32)
    reference = build_reference(
        features,
        model.predict(matrix),
        model.threshold,
        top_features(model.booster),
        "validation_new_customers",
    )
    record_artifact(artifacts_dir, REFERENCE_FILE, to_bytes(reference))
    return reference


def main(artifacts: str | Path | None = None) -> int:
    """`fraud-pipeline monitor build-reference`."""
    artifacts_dir = Path(artifacts or get_settings().artifacts_dir)
    reference = build_for_artifacts(artifacts_dir)
    print(
        f"{REFERENCE_FILE} written to {artifacts_dir}: {reference['rows']} rows, "
        f"features {', '.join(reference['features'])}, flag share {reference['flag_share']:.4%}"
    )
    return 0
