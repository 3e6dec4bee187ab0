"""The upsert against a real PostgreSQL: idempotent, duplicate-safe, all-or-nothing per batch."""

from __future__ import annotations

import pandas as pd
import psycopg2
import pytest

from fraud_pipeline.storage.upsert import upsert_scored
from tests.support.factories import scored_payments


def table_dump(conn, without: tuple[str, ...] = ()) -> list[tuple]:
    """Every stored row, every column but those named in `without`."""
    with conn.cursor() as cur:
        cur.execute("SELECT * FROM payments_scored ORDER BY trans_num")
        keep = [i for i, column in enumerate(cur.description) if column.name not in without]
        return [tuple(row[i] for i in keep) for row in cur.fetchall()]


@pytest.mark.parametrize("method", ["copy", "values"])
def test_same_batch_n_times_leaves_identical_contents(conn, method):
    batch = scored_payments(500)
    first = upsert_scored(conn, batch, batch_size=200, method=method)
    assert (first.inserted, first.updated) == (500, 0)
    snapshot = table_dump(conn)
    for _ in range(3):
        again = upsert_scored(conn, batch, batch_size=200, method=method)
        assert (again.inserted, again.updated, again.unchanged) == (0, 0, 500)
    assert table_dump(conn) == snapshot  # updated_at included: untouched rows stay untouched


@pytest.mark.parametrize("method", ["copy", "values"])
def test_rescore_with_the_same_scores_leaves_rows_byte_identical(conn, method):
    """A re-run scores again (a new scored_at) with the same results: nothing is rewritten."""
    batch = scored_payments(300, seed=4)
    upsert_scored(conn, batch, method=method)
    snapshot = table_dump(conn)
    rescored = batch.assign(scored_at=batch["scored_at"] + pd.Timedelta(hours=1))
    again = upsert_scored(conn, rescored, batch_size=100, method=method)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 300)  # "0 changed"
    assert table_dump(conn) == snapshot  # scored_at and updated_at included


def test_the_stored_payment_stands(conn):
    """Other payment contents under a stored trans_num never rewrite the row or its score."""
    batch = scored_payments(10, seed=5)
    upsert_scored(conn, batch)
    snapshot = table_dump(conn)
    other = batch.assign(amt=1.23, fraud_probability=0.0, is_fraud_pred=False)
    result = upsert_scored(conn, other)
    assert (result.inserted, result.updated, result.unchanged) == (0, 0, 10)
    assert table_dump(conn) == snapshot


def test_copy_and_values_store_the_same_rows(conn):
    batch = scored_payments(300, seed=3)
    upsert_scored(conn, batch, method="copy")
    stamps = ("created_at", "updated_at")  # when each was written: differ by design
    by_copy = table_dump(conn, without=stamps)
    with conn, conn.cursor() as cur:
        cur.execute("TRUNCATE payments_scored CASCADE")  # and its reviews
    upsert_scored(conn, batch, method="values")
    assert table_dump(conn, without=stamps) == by_copy


def test_changed_score_updates_row_but_keeps_alert_bookkeeping(conn):
    batch = scored_payments(10)
    upsert_scored(conn, batch)
    with conn, conn.cursor() as cur:
        cur.execute(
            "UPDATE payments_scored SET alerted_at = now(), alert_id = 'a1' WHERE trans_num = %s",
            (batch.trans_num[0],),
        )
    rescored = batch.copy()
    rescored["fraud_probability"] = 0.99
    rescored["model_version"] = "test-model-2"
    result = upsert_scored(conn, rescored)
    assert (result.inserted, result.updated) == (0, 10)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT alert_id, model_version, created_at < updated_at FROM payments_scored "
            "WHERE trans_num = %s",
            (batch.trans_num[0],),
        )
        assert cur.fetchone() == ("a1", "test-model-2", True)


def test_duplicate_trans_num_inside_a_batch_keeps_the_last(conn):
    batch = scored_payments(20)
    dup = batch.iloc[[5]].copy()
    dup["fraud_probability"] = 0.123
    result = upsert_scored(conn, pd.concat([batch, dup]))
    assert result.inserted == 20 and result.duplicates_in_input == 1
    with conn.cursor() as cur:
        cur.execute(
            "SELECT count(*), max(fraud_probability) FILTER (WHERE trans_num = %s) "
            "FROM payments_scored",
            (batch.trans_num[5],),
        )
        assert cur.fetchone() == (20, 0.123)


def test_failure_mid_batch_writes_nothing_of_that_batch(conn):
    batch = scored_payments(100)
    batch.loc[50, "fraud_probability"] = 7.0  # violates the CHECK constraint, mid-batch
    with pytest.raises(psycopg2.errors.CheckViolation):
        upsert_scored(conn, batch, batch_size=100)
    assert table_dump(conn) == []


def test_only_the_failing_batch_is_rolled_back(conn):
    batch = scored_payments(100)
    batch.loc[75, "card_token"] = "not-a-token"
    with pytest.raises(psycopg2.errors.CheckViolation):
        upsert_scored(conn, batch, batch_size=50)
    stored = {row[0] for row in table_dump(conn)}
    assert stored == set(batch.trans_num[:50])


def test_missing_columns_are_refused_before_touching_the_database(conn):
    with pytest.raises(ValueError, match="fraud_probability"):
        upsert_scored(conn, scored_payments(3).drop(columns=["fraud_probability"]))
