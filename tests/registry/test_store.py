"""The S3 model store (moto): register copies a version there, fetch_verified brings it back
and refuses what was altered in the bucket; MODEL_STORE=s3://... selects it."""

from __future__ import annotations

import pytest

from fraud_pipeline.model.checksums import ArtifactError
from fraud_pipeline.registry import versions
from fraud_pipeline.registry.store import S3Store, store_from_url
from tests.support.aws import TARGET
from tests.support.registry import model_version_copy


def test_s3_store_round_trip_and_tampering(aws, conn, tmp_path):
    _, s3 = aws
    store = store_from_url(f"s3://{TARGET.bucket}/registry", tmp_path / "cache", s3)
    assert isinstance(store, S3Store)
    source = model_version_copy(tmp_path / "v2", "xgb-s3")
    registered = versions.register(conn, store, source)
    assert registered.location == f"s3://{TARGET.bucket}/registry/xgb-s3"
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=TARGET.bucket)["Contents"]}
    assert keys == {f"registry/xgb-s3/{name}" for name in registered.sha256}

    folder = versions.fetch_verified(store, registered)
    for name in registered.sha256:
        assert (folder / name).read_bytes() == (source / name).read_bytes()
    with pytest.raises(ArtifactError, match="already stored"):
        store.put("xgb-s3", source, registered.sha256)

    s3.put_object(Bucket=TARGET.bucket, Key="registry/xgb-s3/model.ubj", Body=b"not the model")
    with pytest.raises(ArtifactError, match="model registry"):
        versions.fetch_verified(store, registered)
