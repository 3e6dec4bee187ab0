"""Scoring throughput: feature rows through the endpoint client and the local model server, over HTTP.

The server runs in its own processes (as the SageMaker container does: uvicorn, one worker per
core), so client and server do not share a GIL. The rows are real model features of generated payments, tiled to `n`.
`python -m fraud_devstack.bench.scoring [rows]` prints the figures as JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import IO

import numpy as np

from fraud_devstack.cli import command_line
from fraud_pipeline.config import get_settings
from fraud_pipeline.model.artifacts import load_model
from fraud_pipeline.net import free_port, wait_for_port
from fraud_pipeline.serving.endpoint import EndpointClient, runtime_client


def feature_rows(n: int) -> np.ndarray:
    """`n` rows of real features (six hours of generated payments, tiled)."""
    from fraud_devstack.stack.generate import payments_between
    from fraud_pipeline.ingest.payments import to_payments

    payments = to_payments(payments_between(datetime(2026, 3, 2), datetime(2026, 3, 2, 6)))
    matrix = load_model().features(payments)
    return np.ascontiguousarray(np.resize(matrix, (n, matrix.shape[1])))


@contextmanager
def cli_server(
    *args: str, processes: int = 1, start_s: float = 60, port: int | None = None
) -> Iterator[str]:
    """`fraud-pipeline <args> --port P` (or `fraud-dev <args>`) in its own process on `port` (default
    a free one); its URL.

    Yielded once `processes` server processes have logged that they serve (uvicorn's "Started
    server process", after the app is built): the port listens before worker processes have
    loaded the model, and a measure must not include their start.
    """
    port = port or free_port()
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(
            [*command_line(*args), "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        try:
            wait_for_port("127.0.0.1", port, timeout=start_s)
            deadline = time.monotonic() + start_s
            while _started(log) < processes:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"fraud-pipeline {args[0]} did not start: {_tail(log)}")
                time.sleep(0.1)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait(timeout=10)


def _started(log: IO[str]) -> int:
    log.seek(0)
    return log.read().count("Started server process")


def _tail(log: IO[str]) -> str:
    log.seek(0)
    return log.read()[-2000:]


def model_server(workers: int | None = None) -> AbstractContextManager[str]:
    """The local model server (`fraud-pipeline serve-model`), as the SageMaker container runs it:
    `workers` processes (default SAGEMAKER_MODEL_SERVER_WORKERS's default, one per core)."""
    workers = workers or os.cpu_count() or 1
    return cli_server("serve-model", "--workers", str(workers), processes=workers)


def run(n: int = 100_000) -> dict[str, float]:
    matrix = feature_rows(n)
    expected = load_model().predict(matrix)
    workers = os.cpu_count() or 1
    figures: dict[str, float] = {"scoring_rows": n, "scoring_workers": workers}
    with model_server(workers) as url:
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
