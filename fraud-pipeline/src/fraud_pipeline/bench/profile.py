"""Where the pipeline's time goes: cProfile of the batch path `make bench` measures.

`python -m fraud_pipeline.bench.profile [ROWS]` scores the same stream as `bench/pipeline.py`
(a day of history, then a batch of ROWS payments, default 100,000) through
`steps.score_and_store` under cProfile and prints the functions that take the most time, by
cumulative time: the excerpt the README quotes for the throughput goal. cProfile sees the main
thread only: the flagged payments' reasons, computed in a thread beside the upsert, show as the
wait for that thread.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import sys
import time

import psycopg2

from fraud_pipeline.bench.pipeline import stream
from fraud_pipeline.bench.run import machine
from fraud_pipeline.bench.scoring import model_server
from fraud_pipeline.bench.storage import scratch_database
from fraud_pipeline.config import get_settings
from fraud_pipeline.model.artifacts import load_model
from fraud_pipeline.pipeline import steps
from fraud_pipeline.serving.endpoint import EndpointClient


def profile_batch(rows: int, top: int = 25) -> str:
    """The cProfile excerpt (top `top` functions by cumulative time) of one batch of `rows`."""
    model = load_model()
    history, batch = stream(rows)
    with scratch_database() as url, model_server() as model_url:
        settings = get_settings().model_copy(update={"sagemaker_endpoint_url": model_url})
        client = EndpointClient.from_settings(settings)
        conn = psycopg2.connect(url)
        try:
            steps.score_and_store(conn, history, model, client)  # the cards' past, not profiled
            profiler = cProfile.Profile()
            began = time.perf_counter()
            profiler.runcall(steps.score_and_store, conn, batch, model, client)
            seconds = time.perf_counter() - began
        finally:
            conn.close()
    cpu = machine()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("cumulative")
    stats.print_stats(top)
    header = (
        f"python -m fraud_pipeline.bench.profile {rows}  ({cpu['cpu']}, {cpu['cores']} cores, "
        f"Python {cpu['python']})\n"
        f"a batch of {len(batch):,} payments over {len(history):,} of history: {seconds:.2f} s "
        f"under cProfile ({len(batch) / seconds:,.0f} payments/s; without it, faster)\n"
    )
    return header + out.getvalue()


if __name__ == "__main__":
    print(profile_batch(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000))
