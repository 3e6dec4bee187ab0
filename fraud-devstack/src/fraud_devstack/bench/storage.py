"""Storage throughput: the upsert (COPY-staged vs execute_values) against bare COPY.

Runs in a throwaway database on the resolved server, so it never touches fraud_db.
`python -m fraud_devstack.bench.storage [rows]` prints the figures as JSON.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd
import psycopg2

from fraud_pipeline.config import PACKAGE_ROOT
from fraud_pipeline.ingest.payments import read_sparkov_csv, to_payments
from fraud_pipeline.registry.versions import set_up_database
from fraud_pipeline.schema import SCORED_COLUMNS
from fraud_pipeline.storage import db
from fraud_pipeline.storage.upsert import copy_csv, prepare, upsert_scored

REAL_ROWS = PACKAGE_ROOT / "data" / "sparkov_kaggle_fraudtest_head.csv.gz"


def scored_rows(n: int, seed: int = 7) -> pd.DataFrame:
    """`n` scored payments built from real rows (cycled, with unique trans_num)."""
    rng = np.random.default_rng(seed)
    base = to_payments(read_sparkov_csv(REAL_ROWS))
    frame = base.iloc[np.arange(n) % len(base)].reset_index(drop=True)
    frame["trans_num"] = [f"bench-{seed}-{i:09d}" for i in range(n)]
    frame["fraud_probability"] = rng.random(n)
    frame["threshold"] = 0.5
    frame["is_fraud_pred"] = frame["fraud_probability"] >= 0.5
    frame["model_version"] = "bench"
    frame["reasons"] = [[] for _ in range(n)]
    frame["scored_at"] = pd.Timestamp.now(tz="UTC")
    return frame


@contextmanager
def scratch_database() -> Iterator[str]:
    """A migrated database of its own, dropped afterwards."""
    url = db.with_database(db.server_url(), f"fraud_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}")
    try:
        set_up_database(url)  # inside: a failed migration leaves no database behind either
        yield url
    finally:
        db.drop_database(url)


def _truncate(conn: psycopg2.extensions.connection) -> None:
    with conn, conn.cursor() as cur:
        cur.execute("TRUNCATE payments_scored CASCADE")  # and its reviews


def bare_copy_seconds(conn: psycopg2.extensions.connection, frame: pd.DataFrame) -> float:
    """COPY of the same rows into an UNLOGGED table without indexes: the database's own limit."""
    rows = prepare(frame)
    with conn, conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS bench_copy")
        cur.execute("CREATE UNLOGGED TABLE bench_copy (LIKE payments_scored INCLUDING DEFAULTS)")
    started = time.perf_counter()
    columns = ", ".join(SCORED_COLUMNS)
    with conn, conn.cursor() as cur:
        cur.copy_expert(f"COPY bench_copy ({columns}) FROM STDIN WITH (FORMAT csv)", copy_csv(rows))
    return time.perf_counter() - started


def run(n: int = 100_000) -> dict[str, float]:
    frame = scored_rows(n)
    figures: dict[str, float] = {"storage_rows": n}
    with scratch_database() as url:
        conn = psycopg2.connect(url)
        try:
            for method in ("copy", "values"):
                _truncate(conn)
                started = time.perf_counter()
                upsert_scored(conn, frame, method=method)
                figures[f"upsert_{method}_rows_per_s"] = n / (time.perf_counter() - started)
            started = time.perf_counter()
            result = upsert_scored(conn, frame)  # all unchanged: the re-run cost
            assert result.unchanged == n
            figures["upsert_rerun_rows_per_s"] = n / (time.perf_counter() - started)
            figures["copy_rows_per_s"] = n / bare_copy_seconds(conn, frame)
        finally:
            conn.close()
    return {k: round(v, 1) for k, v in figures.items()}


if __name__ == "__main__":
    print(json.dumps(run(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000), indent=2))
