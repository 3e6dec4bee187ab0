"""Retention on a real PostgreSQL: old payments and their reviews move to the archive, in
batches, idempotently, without waiting for a running load and without losing a pending alert."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg2
import pytest
from psycopg2 import sql

from fraud_pipeline import clock
from fraud_pipeline.cli import main
from fraud_pipeline.config import get_settings
from fraud_pipeline.schema import LOOKBACK
from fraud_pipeline.storage import history
from fraud_pipeline.storage.archive import _LOCK_ID, archive_payments, min_retention_days
from fraud_pipeline.storage.upsert import upsert_scored
from tests.support.factories import scored_payments

NOW = datetime(2026, 4, 1, 12, tzinfo=UTC)
DAYS = 40  # cutoff 2026-02-20 12:00 UTC
OLD_START = datetime(2026, 1, 30, 12, tzinfo=UTC)  # 300 payments over ~50 h: January and February


def rows(conn, query: str, *params) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(query, params)
        found = cur.fetchall()
    conn.commit()
    return found


def count(conn, table: str) -> int:
    return int(rows(conn, f"SELECT count(*) FROM {table}")[0][0])


@pytest.fixture
def loaded(conn) -> dict[str, str]:
    """300 old payments (all alerted, two reviewed, one fraud still pending) and 200 recent."""
    upsert_scored(conn, scored_payments(300, start=OLD_START, step_s=600, seed=1))
    upsert_scored(conn, scored_payments(200, start=datetime(2026, 3, 28, tzinfo=UTC), seed=2))
    pending, reviewed = rows(
        conn,
        "SELECT trans_num FROM payments_scored WHERE is_fraud_pred AND trans_time < %s "
        "ORDER BY trans_time LIMIT 2",
        OLD_START.replace(day=31),
    )
    with conn, conn.cursor() as cur:
        cur.execute(
            "UPDATE payments_scored SET alerted_at = trans_time, alert_kind = 'alert' "
            "WHERE is_fraud_pred AND trans_num <> %s",
            (pending[0],),
        )
        for verdict in ("false_alarm", "confirmed_fraud"):
            cur.execute(
                "INSERT INTO alert_reviews (trans_num, verdict, analyst) VALUES (%s, %s, 'ana')",
                (reviewed[0], verdict),
            )
    return {"pending": pending[0], "reviewed": reviewed[0]}


def test_old_payments_and_their_reviews_move_whole_and_the_rest_stays(conn, loaded):
    before = rows(conn, "SELECT * FROM payments_scored ORDER BY trans_num")
    reviews_before = rows(conn, "SELECT * FROM alert_reviews ORDER BY review_id")

    result = archive_payments(conn, DAYS, batch_size=70, now=NOW)

    assert (result.payments, result.reviews, result.batches) == (299, 2, 5)
    assert count(conn, "payments_scored") == 201  # the recent 200 and the pending fraud
    assert rows(
        conn, "SELECT trans_num FROM payments_scored WHERE trans_time < %s", result.cutoff
    ) == [(loaded["pending"],)]
    assert count(conn, "alert_reviews") == 0
    # every column of every moved row is in the archive, as it was
    archived = rows(
        conn,
        "SELECT * FROM payments_scored_archive ORDER BY trans_num",
    )
    kept = {row[0] for row in rows(conn, "SELECT trans_num FROM payments_scored")}
    assert [row[:-1] for row in archived] == [row for row in before if row[0] not in kept]
    assert [r[:-1] for r in rows(conn, "SELECT * FROM alert_reviews_archive ORDER BY 1")] == (
        reviews_before
    )
    # one partition per UTC month
    partitions = rows(
        conn,
        "SELECT c.relname, count(*) FROM payments_scored_archive a "
        "JOIN pg_class c ON c.oid = a.tableoid GROUP BY 1 ORDER BY 1",
    )
    assert [name for name, _ in partitions] == [
        "payments_scored_archive_y2026m01",
        "payments_scored_archive_y2026m02",
    ]
    assert sum(n for _, n in partitions) == 299


def test_an_interrupted_run_resumes_and_a_rerun_moves_nothing(conn, loaded):
    first = archive_payments(conn, DAYS, batch_size=100, max_batches=1, now=NOW)
    assert (first.payments, first.batches) == (100, 1)
    rest = archive_payments(conn, DAYS, batch_size=100, now=NOW)
    assert first.payments + rest.payments == 299
    again = archive_payments(conn, DAYS, batch_size=100, now=NOW)
    assert (again.payments, again.reviews, again.batches) == (0, 0, 0)
    assert count(conn, "payments_scored_archive") == 299


def test_a_row_a_running_load_holds_is_skipped_not_waited_for(conn, clean_db, loaded):
    """A load's open transaction holds one old payment: the archive does not wait (lock_timeout
    makes a wait fail the test), moves the others, and takes that one on its next run."""
    (held,) = rows(
        conn,
        "SELECT trans_num FROM payments_scored WHERE trans_time < %s AND trans_num <> %s "
        "ORDER BY trans_time LIMIT 1",
        NOW.replace(month=2, day=1),
        loaded["pending"],
    )[0]
    loader = psycopg2.connect(clean_db)
    try:
        with loader.cursor() as cur:  # what the upsert's ON CONFLICT DO UPDATE locks
            cur.execute(
                "UPDATE payments_scored SET updated_at = now() WHERE trans_num = %s", (held,)
            )
            with conn.cursor() as mine:
                mine.execute("SET lock_timeout = '10s'")
            conn.commit()
            result = archive_payments(conn, DAYS, batch_size=50, now=NOW)
        assert result.payments == 298
        assert rows(conn, "SELECT 1 FROM payments_scored WHERE trans_num = %s", held) == [(1,)]
        loader.commit()
    finally:
        loader.close()
    assert archive_payments(conn, DAYS, now=NOW).payments == 1


def test_two_archive_runs_never_overlap(conn, clean_db, loaded):
    other = psycopg2.connect(clean_db)
    try:
        with other.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (_LOCK_ID,))
        result = archive_payments(conn, DAYS, now=NOW)
        assert result.skipped and result.payments == 0
        assert count(conn, "payments_scored_archive") == 0
        with other.cursor() as cur:
            cur.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))
    finally:
        other.close()
    assert archive_payments(conn, DAYS, now=NOW).payments == 299


def test_retention_shorter_than_what_the_pipeline_reads_is_refused(conn):
    assert min_retention_days() > LOOKBACK.days
    with pytest.raises(ValueError, match="reads 35 days back"):
        archive_payments(conn, min_retention_days() - 1, now=NOW)


def test_the_archive_has_every_column_of_payments_scored(conn):
    """A migration that adds a column to payments_scored must add it to the archive too."""
    query = (
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
    )
    for table, archive in (
        ("payments_scored", "payments_scored_archive"),
        ("alert_reviews", "alert_reviews_archive"),
    ):
        assert rows(conn, query, archive)[:-1] == rows(conn, query, table), table


def test_cli_db_archive_uses_retention_days(conn, clean_db, loaded, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", clean_db)
    monkeypatch.setenv("RETENTION_DAYS", str(DAYS))
    get_settings.cache_clear()
    try:
        with clock.frozen(NOW):
            assert main(["db", "archive", "--batch-size", "1000"]) == 0
            assert "archived 299 payments and 2 reviews" in capsys.readouterr().out
            assert main(["db", "archive", "--older-than-days", "3"]) == 2
            assert "refused" in capsys.readouterr().out
    finally:
        get_settings.cache_clear()
    assert count(conn, "payments_scored_archive") == 299


@pytest.mark.parametrize(
    ("query", "params", "index"),
    [
        (history._SELECT_ALL, ("tokens", "since", "until"), "payments_scored_card_time_idx"),
        (  # the review queue's scan (fraud_review_queue in 018)
            "SELECT * FROM payments_scored p WHERE p.is_fraud_pred "
            "AND NOT EXISTS (SELECT 1 FROM alert_reviews r WHERE r.trans_num = p.trans_num)",
            (),
            "payments_scored_flagged_idx",
        ),
        (  # the archive's own selection
            "SELECT trans_num FROM payments_scored WHERE trans_time < %s "
            "AND NOT (is_fraud_pred AND alerted_at IS NULL) ORDER BY trans_time LIMIT 100",
            ("until",),
            "payments_scored_trans_time_idx",
        ),
    ],
)
def test_the_hot_queries_have_an_index_that_matches_them(conn, loaded, query, params, index):
    """With sequential scans priced out, the planner picks the index only if it matches the
    query: a dropped index, a predicate the partial index does not cover, or a parameter of
    another type than the column (text[] for char(64)) fails here."""
    tokens = [row[0] for row in rows(conn, "SELECT DISTINCT card_token FROM payments_scored")]
    values = {"tokens": tokens[:5], "since": OLD_START, "until": NOW}
    text = query.as_string(conn) if isinstance(query, sql.Composable) else query
    with conn.cursor() as cur:
        cur.execute("ANALYZE payments_scored")
        cur.execute("SET enable_seqscan = off")
        cur.execute("EXPLAIN " + text, tuple(values[name] for name in params))
        plan = "\n".join(row[0] for row in cur.fetchall())
    conn.rollback()
    assert index in plan, plan
