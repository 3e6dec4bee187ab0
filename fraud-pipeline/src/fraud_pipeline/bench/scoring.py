"""Scoring throughput: feature rows through the endpoint client and the local model server, over HTTP.

The server runs in its own process (as the SageMaker container does), so client and server do
not share a GIL. The rows are real model features of generated payments, tiled to `n`.
`python -m fraud_pipeline.bench.scoring [rows]` prints the figures as JSON.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime

import numpy as np

from fraud_pipeline.config import get_settings
from fraud_pipeline.model.artifacts import load_model
from fraud_pipeline.net import free_port, wait_for_port
from fraud_pipeline.serving.endpoint import EndpointClient, runtime_client


def feature_rows(n: int) -> np.ndarray:
    """`n` rows of real features (six hours of generated payments, tiled)."""
    from fraud_pipeline.devstack.generate import payments_between
    from fraud_pipeline.ingest.payments import to_payments

    payments = to_payments(payments_between(datetime(2026, 3, 2), datetime(2026, 3, 2, 6)))
    matrix = load_model().features(payments)
    return np.ascontiguousarray(np.resize(matrix, (n, matrix.shape[1])))


@contextmanager
def cli_server(*args: str) -> Iterator[str]:
    """`fraud-pipeline <args> --port P` in its own process on a free port; its URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "fraud_pipeline.cli", *args, "--port", str(port)],
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_for_port("127.0.0.1", port, timeout=60)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def model_server() -> AbstractContextManager[str]:
    """The local model server (`fraud-pipeline serve-model`), as the SageMaker container runs."""
    return cli_server("serve-model")


def run(n: int = 100_000) -> dict[str, float]:
    matrix = feature_rows(n)
    expected = load_model().predict(matrix)
    figures: dict[str, float] = {"scoring_rows": n}
    with model_server() as url:
        settings = get_settings().model_copy(update={"sagemaker_endpoint_url": url})
        for content_type in ("application/x-npy", "text/csv"):
            client = EndpointClient.from_settings(
                settings.model_copy(update={"scoring_content_type": content_type})
            )
            client.predict(matrix[:1000])  # warm the connection pool and the server
            started = time.perf_counter()
            result = client.predict(matrix)
            seconds = time.perf_counter() - started
            np.testing.assert_allclose(result.probabilities, expected, atol=1e-6)
            name = "npy" if "npy" in content_type else "csv"
            figures[f"scoring_{name}_seconds"] = seconds
            figures[f"scoring_{name}_rows_per_s"] = n / seconds
        runtime = runtime_client(settings)
        started = time.perf_counter()
        for _ in range(200):
            runtime.invoke_endpoint(
                EndpointName=settings.sagemaker_endpoint_name,
                ContentType="text/csv",
                Body=",".join(f"{v:.9g}" for v in matrix[0]).encode(),
            )["Body"].read()
        figures["single_row_csv_latency_ms"] = (time.perf_counter() - started) / 200 * 1000
    return {k: round(v, 3) for k, v in figures.items()}


if __name__ == "__main__":
    print(json.dumps(run(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000), indent=2))
