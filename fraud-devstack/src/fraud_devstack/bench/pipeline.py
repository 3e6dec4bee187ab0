"""Pipeline throughput against the peers' one-at-a-time design and against bare COPY.

A stream of generated payments runs for a day before the measured batch, so the batch's
cards have a realistic history in `payments_scored` (stored first, not timed). Then, in one
scratch database and against the model server in its own process:

- `pipeline`: the batch's data path as the DAG (and every back-fill) runs it: the validated
  batch put in the inbox (COPY, as `steps.admit` does), then `steps.score_and_load`: claim,
  card history from PostgreSQL, features, scoring over HTTP (SageMaker protocol), decisions
  and reasons, upsert and delete from the inbox, chunk by chunk;
- `naive`: the peers' design on the first payments: per payment, its history and features, one
  HTTP call and one INSERT + commit;
- `copy`: bare COPY of the same scored rows into an unlogged table (the database's limit).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import psycopg2
from psycopg2 import sql

from fraud_devstack.bench.scoring import model_server
from fraud_devstack.bench.storage import bare_copy_seconds, scratch_database
from fraud_devstack.stack.generate import payments_between
from fraud_pipeline.config import get_settings
from fraud_pipeline.ingest.payments import to_payments
from fraud_pipeline.model.artifacts import Model, load_model
from fraud_pipeline.pipeline import steps
from fraud_pipeline.pipeline.results import BatchId, Loaded
from fraud_pipeline.schema import PAYMENT_COLUMNS, SCORED_COLUMNS
from fraud_pipeline.serving.endpoint import EndpointClient
from fraud_pipeline.storage.history import load_card_history
from fraud_pipeline.storage.upsert import copy_into, upsert_scored

HISTORY_DAYS = 1
END = datetime(2026, 3, 4)  # a fixed, ordinary Wednesday: the same payments on every run


def stream(batch_rows: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(history, batch): the batch is the stream's last `batch_rows` payments."""
    rate = 1.4 * batch_rows / 1440  # the last day holds about the batch (daily rhythm)
    raw = payments_between(END - timedelta(days=HISTORY_DAYS + 1), END, rate_per_min=rate)
    payments = to_payments(raw)
    cut = len(payments) - min(batch_rows, len(payments) // 2)
    return payments.iloc[:cut].reset_index(drop=True), payments.iloc[cut:].reset_index(drop=True)


def naive_one(
    conn: psycopg2.extensions.connection,
    payment: pd.DataFrame,
    model: Model,
    client: EndpointClient,
) -> None:
    """The peers' design for one payment: its features, one HTTP call, one INSERT + commit."""
    named, matrix = model.feature_table(payment, load_card_history(conn, payment))
    result = client.predict(matrix)
    scored = steps.scored_frame(
        payment, named, matrix, result.probabilities, result.model_version or "unknown", model
    )
    upsert_scored(conn, scored, method="values")  # one INSERT ... ON CONFLICT, one commit


def _delete(conn: psycopg2.extensions.connection, trans_nums: list[str]) -> None:
    with conn, conn.cursor() as cur:
        cur.execute("DELETE FROM payments_scored WHERE trans_num = ANY(%s)", (trans_nums,))


def naive_seconds(
    conn: psycopg2.extensions.connection,
    payments: pd.DataFrame,
    model: Model,
    client: EndpointClient,
) -> float:
    """One payment at a time: features, one HTTP call, one INSERT and one commit each."""
    upsert_log = logging.getLogger("fraud_pipeline.storage.upsert")
    level = upsert_log.level
    upsert_log.setLevel(logging.WARNING)  # not a log line per payment
    started = time.perf_counter()
    try:
        for position in range(len(payments)):
            naive_one(conn, payments.iloc[[position]].reset_index(drop=True), model, client)
        return time.perf_counter() - started
    finally:
        upsert_log.setLevel(level)


def inbox_to_scored(
    conn: psycopg2.extensions.connection,
    payments: pd.DataFrame,
    model: Model,
    client: EndpointClient,
) -> Loaded:
    """The batch into the inbox, then `score_and_load` (the one path): what it stored."""
    with conn, conn.cursor() as cur:
        copy_into(cur, "payments_inbox", payments.loc[:, list(PAYMENT_COLUMNS)])
    loaded = steps.score_and_load(conn, BatchId("bench"), model, client)
    assert loaded.loaded == len(payments), loaded
    return loaded


def stored_rows(conn: psycopg2.extensions.connection, trans_nums: list[str]) -> pd.DataFrame:
    """The stored rows (SCORED_COLUMNS) of these payments, as the bare COPY writes them."""
    with conn, conn.cursor() as cur:
        cur.execute(
            sql.SQL("SELECT {} FROM payments_scored WHERE trans_num = ANY(%s)").format(
                sql.SQL(", ").join(map(sql.Identifier, SCORED_COLUMNS))
            ),
            (trans_nums,),
        )
        return pd.DataFrame(cur.fetchall(), columns=list(SCORED_COLUMNS))


@dataclass(frozen=True)
class Bench:
    """A scratch database holding the history, a model server, and the batch to measure."""

    conn: psycopg2.extensions.connection
    model: Model
    client: EndpointClient
    history: pd.DataFrame
    batch: pd.DataFrame


@contextmanager
def batch_bench(batch_rows: int) -> Iterator[Bench]:
    """The stream's history stored (the cards' past, not measured), the batch still to score."""
    model = load_model()
    history, batch = stream(batch_rows)
    with scratch_database() as url, model_server() as model_url:
        settings = get_settings().model_copy(update={"sagemaker_endpoint_url": model_url})
        client = EndpointClient.from_settings(settings)
        conn = psycopg2.connect(url)
        try:
            inbox_to_scored(conn, history, model, client)
            yield Bench(conn, model, client, history, batch)
        finally:
            conn.close()


def run(batch_rows: int = 100_000, naive_rows: int = 2_000) -> dict[str, Any]:
    """The throughput figures (rows per second) and what they were measured on."""
    with batch_bench(batch_rows) as bench:
        conn, model, client, batch = bench.conn, bench.model, bench.client, bench.batch
        stored = len(bench.history)
        print(f"  stream: {stored:,} payments of history, a batch of {len(batch):,}", flush=True)
        figures: dict[str, Any] = {"pipeline_rows": len(batch), "history_rows": stored}
        started = time.perf_counter()
        loaded = inbox_to_scored(conn, batch, model, client)
        pipeline_s = time.perf_counter() - started
        figures["pipeline_rows_per_s"] = len(batch) / pipeline_s
        print(f"  pipeline (inbox -> score_and_load): {len(batch) / pipeline_s:,.0f} payments/s")
        scored = stored_rows(conn, batch["trans_num"].tolist())

        few = batch.head(naive_rows)
        _delete(conn, few["trans_num"].tolist())
        naive_s = naive_seconds(conn, few, model, client)
        figures["naive_rows"] = len(few)
        figures["naive_rows_per_s"] = len(few) / naive_s
        print(f"  naive: {len(few) / naive_s:,.1f} payments/s", flush=True)

        copy_s = bare_copy_seconds(conn, scored)
        figures["copy_rows_per_s"] = len(batch) / copy_s
        print(f"  bare COPY: {len(batch) / copy_s:,.0f} rows/s", flush=True)
    figures["speedup_vs_naive"] = figures["pipeline_rows_per_s"] / figures["naive_rows_per_s"]
    figures["copy_ratio"] = pipeline_s / copy_s
    figures["frauds_in_batch"] = loaded.frauds
    return figures
