"""The training reference stored with the model: listed, verified, reproducible."""

from __future__ import annotations

import pytest

from fraud_pipeline.config import get_settings
from fraud_pipeline.model.artifacts import load_model, read_metadata
from fraud_pipeline.model.checksums import ArtifactError, sha256_of
from fraud_pipeline.model.reference import (
    REFERENCE_FILE,
    SCORE,
    load_reference,
    top_features,
)
from fraud_pipeline.monitoring.build_reference import build_for_artifacts


def test_the_committed_reference_is_listed_and_describes_the_models_top_features():
    artifacts = get_settings().artifacts_dir
    reference = load_reference(artifacts)
    assert read_metadata(artifacts)["sha256"][REFERENCE_FILE] == sha256_of(
        artifacts / REFERENCE_FILE
    )
    model = load_model(artifacts)  # the listed reference is verified with the rest
    assert reference["features"] == top_features(model.booster)
    assert len(reference["features"]) == 5
    assert reference["source"] == "validation_new_customers"
    assert reference["threshold"] == model.threshold
    for name in [SCORE, *reference["features"]]:
        bins = reference["distributions"][name]
        assert len(bins["shares"]) == len(bins["edges"]) + 1
        assert sum(bins["shares"]) == pytest.approx(1.0)


def test_an_altered_reference_is_refused(artifacts_copy):
    path = artifacts_copy / REFERENCE_FILE
    path.write_text(path.read_text().replace('"rows"', '"rows" ', 1))
    with pytest.raises(ArtifactError, match="does not match the SHA-256"):
        load_reference(artifacts_copy)


def test_rebuilding_the_reference_gives_the_same_bytes_and_leaves_the_model_alone(artifacts_copy):
    before = {p.name: sha256_of(p) for p in artifacts_copy.iterdir()}
    (artifacts_copy / REFERENCE_FILE).unlink()
    build_for_artifacts(artifacts_copy)
    assert {p.name: sha256_of(p) for p in artifacts_copy.iterdir()} == before
