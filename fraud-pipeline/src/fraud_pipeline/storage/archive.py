"""Retention: move payments older than RETENTION_DAYS, with their reviews, to the archive tables.

payments_scored stays small enough for the hot paths (card history, report, review queue), and
keeps its primary key trans_num (the upsert's ON CONFLICT needs it, which rules out partitioning
it by time); the archive is partitioned by month (sql/migrations/022_payments_archive.sql).

Each batch is one transaction: lock up to `batch_size` old payments with FOR UPDATE SKIP LOCKED
(a row a running load holds is skipped, never waited for: it goes next time), copy their reviews,
delete the reviews, move the payments with DELETE ... RETURNING into the archive. An interrupted
run loses nothing and a re-run moves what is left (the archive ignores a row it already holds).
A fraud whose alert is still pending is never archived: its alert would be lost. Two archive
runs never overlap (an advisory lock; the second one returns at once).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg2.extensions
from psycopg2 import sql

from fraud_pipeline import clock
from fraud_pipeline.config import Settings, get_settings
from fraud_pipeline.storage.db import connect, database_url

log = logging.getLogger(__name__)

PAYMENTS, PAYMENTS_ARCHIVE = "payments_scored", "payments_scored_archive"
REVIEWS, REVIEWS_ARCHIVE = "alert_reviews", "alert_reviews_archive"
_LOCK_ID = 0x46524144_41524348 & 0x7FFFFFFFFFFFFFFF  # "FRADARCH": one archive run at a time


def min_retention_days() -> int:
    """The shortest retention Settings allow (the features' and monitor's 30-day windows)."""
    bound = next(m for m in Settings.model_fields["retention_days"].metadata if hasattr(m, "ge"))
    return int(bound.ge)


@dataclass(frozen=True)
class ArchiveResult:
    cutoff: datetime
    payments: int
    reviews: int
    batches: int
    skipped: bool = False  # another archive run holds the lock


def _columns(cur: psycopg2.extensions.cursor, table: str) -> sql.Composed:
    """The table's columns as a quoted list, read from the catalogue: a column a later migration
    adds to payments_scored (and to the archive) is carried without editing this module."""
    cur.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) "
        "AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        (table,),
    )
    return sql.SQL(", ").join(sql.Identifier(name) for (name,) in cur.fetchall())


def _ensure_partitions(cur: psycopg2.extensions.cursor, trans_nums: list[str]) -> None:
    """The archive's monthly partitions (UTC months) for these payments' times."""
    cur.execute(
        "SELECT DISTINCT date_trunc('month', trans_time AT TIME ZONE 'UTC')::date "
        "FROM payments_scored WHERE trans_num = ANY(%s)",
        (trans_nums,),
    )
    for (month,) in cur.fetchall():
        following = (month.replace(day=28) + timedelta(days=4)).replace(day=1)
        cur.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} PARTITION OF {} FOR VALUES FROM (%s) TO (%s)"
            ).format(
                sql.Identifier(f"{PAYMENTS_ARCHIVE}_y{month:%Y}m{month:%m}"),
                sql.Identifier(PAYMENTS_ARCHIVE),
            ),
            (f"{month.isoformat()} 00:00+00", f"{following.isoformat()} 00:00+00"),
        )


def _move_batch(
    conn: psycopg2.extensions.connection, cutoff: datetime, batch_size: int
) -> tuple[int, int]:
    """Move one batch in one transaction; (payments, reviews) moved."""
    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT trans_num FROM payments_scored WHERE trans_time < %s "
            "AND NOT ((is_fraud_pred OR rule_flagged) AND alerted_at IS NULL) "
            "ORDER BY trans_time LIMIT %s FOR UPDATE SKIP LOCKED",
            (cutoff, batch_size),
        )
        trans_nums = [row[0] for row in cur.fetchall()]
        if not trans_nums:
            return 0, 0
        _ensure_partitions(cur, trans_nums)
        reviews = _columns(cur, REVIEWS)
        cur.execute(
            sql.SQL(
                "WITH moved AS (DELETE FROM {src} WHERE trans_num = ANY(%s) RETURNING {cols}) "
                "INSERT INTO {dst} ({cols}) SELECT {cols} FROM moved "
                "ON CONFLICT (review_id) DO NOTHING"
            ).format(
                src=sql.Identifier(REVIEWS), dst=sql.Identifier(REVIEWS_ARCHIVE), cols=reviews
            ),
            (trans_nums,),
        )
        moved_reviews = cur.rowcount
        payments = _columns(cur, PAYMENTS)
        cur.execute(
            sql.SQL(
                "WITH moved AS (DELETE FROM {src} WHERE trans_num = ANY(%s) RETURNING {cols}) "
                "INSERT INTO {dst} ({cols}) SELECT {cols} FROM moved "
                "ON CONFLICT (trans_num, trans_time) DO NOTHING"
            ).format(
                src=sql.Identifier(PAYMENTS), dst=sql.Identifier(PAYMENTS_ARCHIVE), cols=payments
            ),
            (trans_nums,),
        )
        return len(trans_nums), moved_reviews


def archive_payments(
    conn: psycopg2.extensions.connection,
    older_than_days: int,
    *,
    batch_size: int = 10_000,
    max_batches: int | None = None,
    now: datetime | None = None,
) -> ArchiveResult:
    """Move payments with trans_time older than `older_than_days` days, batch by batch."""
    if older_than_days < min_retention_days():
        raise ValueError(
            f"--older-than-days {older_than_days}: the pipeline reads {min_retention_days()} days "
            "back (card history, monitoring); archiving more would change its results"
        )
    cutoff = (now or clock.now()) - timedelta(days=older_than_days)
    with conn.cursor() as cur:  # a session lock: held across the batches' transactions
        cur.execute("SELECT pg_try_advisory_lock(%s)", (_LOCK_ID,))
        (locked,) = cur.fetchone() or (False,)
    conn.commit()
    if not locked:
        log.warning("another archive run is in progress: nothing done")
        return ArchiveResult(cutoff, 0, 0, 0, skipped=True)
    payments = reviews = batches = 0
    try:
        while max_batches is None or batches < max_batches:
            moved, moved_reviews = _move_batch(conn, cutoff, batch_size)
            if not moved:
                break
            batches, payments, reviews = batches + 1, payments + moved, reviews + moved_reviews
            log.info("archived %d payments (%d so far) older than %s", moved, payments, cutoff)
    finally:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))
    return ArchiveResult(cutoff, payments, reviews, batches)


def main(
    older_than_days: int | None = None,
    *,
    batch_size: int | None = None,
    max_batches: int | None = None,
) -> int:
    """`fraud-pipeline db archive`: defaults RETENTION_DAYS and ARCHIVE_BATCH_SIZE; exit code."""
    settings = get_settings()
    days = settings.retention_days if older_than_days is None else older_than_days
    conn = connect(database_url(settings))
    try:
        result = archive_payments(
            conn,
            days,
            batch_size=batch_size or settings.archive_batch_size,
            max_batches=max_batches,
        )
    except ValueError as error:
        print(f"db archive refused: {error}")
        return 2
    finally:
        conn.close()
    if result.skipped:
        print("another archive run is in progress: nothing done")
    else:
        print(
            f"archived {result.payments} payments and {result.reviews} reviews older than "
            f"{result.cutoff.isoformat()} in {result.batches} batches"
        )
    return 0
