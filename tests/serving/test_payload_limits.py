"""Serverless endpoints take at most 4 MB per request (real-time ones 6 MB): the client's
batches, as sent over HTTP to the real local model server, stay under MAX_PAYLOAD_BYTES in both
encodings, even when every value prints at CSV's longest."""

from __future__ import annotations

import numpy as np
import pytest

from fraud_pipeline.model.artifacts import load_model
from fraud_pipeline.serving.endpoint import MAX_PAYLOAD_BYTES, EndpointClient
from tests.support.aws import runtime_for

SERVERLESS_LIMIT = 4_000_000  # bytes: AWS's "4 MB", read as strictly as possible


@pytest.mark.parametrize("content_type", ["application/x-npy", "text/csv"])
def test_every_request_body_stays_under_the_serverless_limit(model_server_url, content_type):
    width = len(load_model().feature_names)
    # the longest "%.9g" a float32 prints: sign, 9 digits, a two-digit negative exponent
    worst = np.full((300_000, width), -1.23456789e-37)
    runtime = runtime_for(model_server_url, read_timeout=60)
    sizes: list[int] = []
    runtime.meta.events.register(
        "before-send.sagemaker-runtime.InvokeEndpoint",
        lambda request, **_: sizes.append(len(request.body)),
    )
    client = EndpointClient(runtime, "fraud-xgboost", content_type=content_type, concurrency=2)

    scored = client.predict(worst)

    assert len(scored.probabilities) == len(worst)
    assert len(sizes) > 1  # cut into several requests
    assert max(sizes) <= MAX_PAYLOAD_BYTES < SERVERLESS_LIMIT
    assert max(sizes) > MAX_PAYLOAD_BYTES * 0.8  # and not into needlessly small ones
