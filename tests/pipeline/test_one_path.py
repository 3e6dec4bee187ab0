"""One path for every payment (issue 28): one claim, one scoring of a chunk, one upsert.

A back-fill chunk admits its payments to the inbox claimed under its own batch: a per-minute
run's `score_and_load` leaves them alone. Should a run take them over anyway (a claim older
than STALE_CLAIM) while the chunk is being scored, the chunk stores only what it still holds:
each payment is stored once, by one of them, and leaves the inbox with it. The task results
survive XCom's JSON. In-process model (no model server): the claim rules are what is tested.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg2
import pytest

from fraud_devstack.stack.generate import payments_between
from fraud_pipeline.ingest.payments import to_payments
from fraud_pipeline.ingest.validate import Validated
from fraud_pipeline.model.artifacts import Model, load_model
from fraud_pipeline.pipeline import steps
from fraud_pipeline.pipeline.results import BatchId, Ingested, Loaded, RunId, batch_for
from fraud_pipeline.serving.endpoint import ScoreResult

PACKAGE = Path(steps.__file__).resolve().parents[1]
START = pd.Timestamp("2026-03-03 01:00", tz="UTC")


class InProcess:
    """A Scorer scoring with the model in this process; `before` runs first (a race)."""

    def __init__(self, model: Model, before=None) -> None:
        self.model, self.before, self.calls = model, before, 0

    def predict(self, matrix: np.ndarray) -> ScoreResult:
        self.calls += 1
        if self.before is not None:
            self.before()
        return ScoreResult(self.model.predict(matrix), self.model.version)


@pytest.fixture(scope="module")
def model() -> Model:
    return load_model()


def payments(minutes: int = 10) -> pd.DataFrame:
    raw = payments_between(START, START + pd.Timedelta(minutes=minutes), seed=7, rate_per_min=30)
    return to_payments(raw)


def admit_claimed(conn, frame: pd.DataFrame, batch: BatchId) -> Ingested:
    """A back-fill chunk's admission: its payments wait in the inbox claimed by `batch`."""
    checked = Validated(good=frame, bad=frame.iloc[:0].assign(reason=""))
    with conn, conn.cursor() as cur:
        return steps.admit(cur, checked, RunId(batch), fetched=len(frame), claim_as=batch)


def scalar(conn, query: str) -> int:
    with conn, conn.cursor() as cur:
        cur.execute(query)
        return int(cur.fetchone()[0])


def test_a_dag_run_leaves_a_back_fill_chunks_fresh_rows_to_it(conn, model):
    frame = payments()
    assert admit_claimed(conn, frame, BatchId("backfill__1")).new == len(frame) > 100
    dag_run = steps.score_and_load(conn, BatchId("scheduled__1"), model, InProcess(model))
    assert dag_run.loaded == 0 and dag_run.trans_time_from is None
    chunk = steps.score_and_load(conn, BatchId("backfill__1"), model, InProcess(model))
    assert chunk.loaded == len(frame) == scalar(conn, "SELECT count(*) FROM payments_scored")
    assert scalar(conn, "SELECT count(*) FROM payments_inbox") == 0
    # Run again (a retry of the chunk, or of the DAG's task): nothing left, nothing stored.
    assert steps.score_and_load(conn, BatchId("backfill__1"), model, InProcess(model)).loaded == 0


def test_a_claim_taken_over_while_a_chunk_is_scored_stores_each_payment_once(clean_db, conn, model):
    """The back-fill's chunk is scored; meanwhile its claim goes stale and a DAG run takes the
    rows over and stores them. The chunk then finds none of its rows in the inbox: it stores
    nothing, and nothing is doubled or lost."""
    frame = payments()
    admit_claimed(conn, frame, BatchId("backfill__2"))
    other = psycopg2.connect(clean_db)
    taken: list[Loaded] = []

    def a_dag_run_takes_over() -> None:
        if taken:
            return
        with other, other.cursor() as cur:  # as if STALE_CLAIM had passed
            cur.execute("UPDATE payments_inbox SET claimed_at = claimed_at - interval '1 hour'")
        taken.append(steps.score_and_load(other, BatchId("scheduled__2"), model, InProcess(model)))

    try:
        chunk = steps.score_and_load(
            conn, BatchId("backfill__2"), model, InProcess(model, before=a_dag_run_takes_over)
        )
    finally:
        other.close()
    assert taken[0].loaded == len(frame) and chunk.loaded == 0
    assert scalar(conn, "SELECT count(*) FROM payments_scored") == len(frame)
    assert scalar(conn, "SELECT count(DISTINCT trans_num) FROM payments_scored") == len(frame)
    assert scalar(conn, "SELECT count(*) FROM payments_inbox") == 0


def test_a_batch_is_stored_chunk_by_chunk_with_reasons_only_for_flagged(conn, model):
    frame = payments(60)
    admit_claimed(conn, frame, BatchId("b"))
    settings = steps.get_settings().model_copy(update={"upsert_batch_size": 500})
    scorer = InProcess(model)
    loaded = steps.score_and_load(conn, BatchId("b"), model, scorer, settings)
    assert scorer.calls == -(-len(frame) // 500) > 1  # one endpoint call per chunk
    assert loaded.loaded == len(frame) and loaded.inserted == len(frame)
    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FILTER (WHERE is_fraud_pred), "
            "count(*) FILTER (WHERE jsonb_array_length(reasons) > 0), "
            "count(*) FILTER (WHERE NOT is_fraud_pred AND jsonb_array_length(reasons) > 0), "
            "min(trans_time), max(trans_time) FROM payments_scored"
        )
        flagged, with_reasons, unflagged_with_reasons, first, last = cur.fetchone()
    assert flagged == loaded.frauds == with_reasons and unflagged_with_reasons == 0
    assert (pd.Timestamp(loaded.trans_time_from), pd.Timestamp(loaded.trans_time_to)) == (
        pd.Timestamp(first),
        pd.Timestamp(last),
    )


def test_the_task_results_survive_xcom_json():
    ingested = Ingested(RunId("scheduled__x"), fetched=3, good=2, quarantined=1, new=2, late=1)
    loaded = Loaded(BatchId("scheduled__x"), loaded=2, frauds=1, model_version="v1")
    for result in (ingested, loaded):
        assert type(result).from_xcom(json.loads(json.dumps(result.to_xcom()))) == result
    assert batch_for(ingested.run_id) == loaded.batch_id


def _definitions(pattern: str) -> list[str]:
    """The package's files (benches excepted) where `pattern` occurs, once per occurrence."""
    found = []
    for path in PACKAGE.rglob("*.py"):
        if "bench" not in path.parts:
            found += [path.name for _ in re.finditer(pattern, path.read_text())]
    return found


@pytest.mark.parametrize(
    ("what", "pattern"),
    [
        ("the claim", r"UPDATE payments_inbox SET batch_id = %"),
        ("the scoring of a chunk", r"def score_chunk\("),
        ("the upsert's rule", r"(?m)^ON CONFLICT \(trans_num\) DO UPDATE"),
        ("the pipeline's call of the upsert", r"merge_scored\(cur, "),
    ],
)
def test_one_definition_of_each_step(what, pattern):
    assert len(_definitions(pattern)) == 1, (what, _definitions(pattern))
