"""Where the pipeline's time goes: cProfile of the batch path `make bench` measures.

`python -m fraud_devstack.bench.profile [ROWS]` scores the same stream as `bench/pipeline.py`
(a day of history, then a batch of ROWS payments, default 100,000) through
the inbox and `steps.score_and_load` (as the DAG runs it) under cProfile and prints the functions that take the most time, by
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

from fraud_devstack.bench.pipeline import batch_bench, inbox_to_scored
from fraud_devstack.bench.run import machine


def profile_batch(rows: int, top: int = 25) -> str:
    """The cProfile excerpt (top `top` functions by cumulative time) of one batch of `rows`."""
    with batch_bench(rows) as bench:
        profiler = cProfile.Profile()
        began = time.perf_counter()
        profiler.runcall(inbox_to_scored, bench.conn, bench.batch, bench.model, bench.client)
        seconds = time.perf_counter() - began
    history, batch = bench.history, bench.batch
    cpu = machine()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("cumulative")
    stats.print_stats(top)
    header = (
        f"python -m fraud_devstack.bench.profile {rows}  ({cpu['cpu']}, {cpu['cores']} cores, "
        f"Python {cpu['python']})\n"
        f"a batch of {len(batch):,} payments over {len(history):,} of history: {seconds:.2f} s "
        f"under cProfile ({len(batch) / seconds:,.0f} payments/s; without it, faster)\n"
    )
    return header + out.getvalue()


if __name__ == "__main__":
    print(profile_batch(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000))
