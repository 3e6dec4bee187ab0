"""Migrations, the daily report view's day boundary, and card-number protection."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
import psycopg2
import pytest

from fraud_pipeline.storage import migrate as migrate_module
from fraud_pipeline.storage.db import (
    database_exists,
    drop_database,
    server_lock,
    with_database,
)
from fraud_pipeline.storage.migrate import discover, migrate
from fraud_pipeline.storage.upsert import upsert_scored
from tests.support.factories import real_rows, scored_payments

PARIS = ZoneInfo("Europe/Paris")


def test_migrate_twice_is_a_noop(database_url):
    cli = [sys.executable, "-m", "fraud_pipeline.cli", "db", "migrate"]
    out = subprocess.run(cli, capture_output=True, text=True, check=True).stdout
    assert "up to date" in out
    assert migrate(database_url) == []
    with psycopg2.connect(database_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT version FROM schema_migrations ORDER BY version")
        assert [r[0] for r in cur.fetchall()] == [m.version for m in discover()]


def test_fresh_database_is_created_and_migrated_by_the_cli(database_url):
    # Built with the URL library: the embedded server's URL keeps its socket in the query.
    url = with_database(database_url, f"fraud_cli_{uuid.uuid4().hex[:8]}")
    cli = [sys.executable, "-m", "fraud_pipeline.cli", "db", "migrate", "--database-url", url]
    try:
        first = subprocess.run(cli, capture_output=True, text=True, check=True).stdout
        second = subprocess.run(cli, capture_output=True, text=True, check=True).stdout
        assert "applied 001_payments_scored" in first
        assert "up to date" in second
    finally:
        drop_database(url)


def _waiting_for_the_migration_lock(url: str) -> bool:
    """Does a session of this server wait for the migrations' advisory lock right now?"""
    with psycopg2.connect(with_database(url, "postgres")) as admin, admin.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            " AND objid = %s",
            (migrate_module._LOCK_ID,),
        )
        return cur.fetchone()[0] > 0


def test_migrations_of_two_databases_of_one_server_take_turns(database_url):
    """Roles are the server's, not a database's: two fresh databases migrated at once both ran
    `CREATE ROLE fraud_report_reader` and one failed (unique violation on pg_authid). A
    migration waits while another one anywhere on the server holds the lock."""
    url = with_database(database_url, f"fraud_turns_{uuid.uuid4().hex[:8]}")
    done: list[object] = []
    try:
        with server_lock(database_url, migrate_module._LOCK_ID):
            worker = threading.Thread(target=lambda: done.append(migrate(url)), daemon=True)
            worker.start()
            deadline = time.monotonic() + 60
            while not _waiting_for_the_migration_lock(database_url):
                assert worker.is_alive(), "the second migration did not wait for the lock"
                assert time.monotonic() < deadline, "the second migration never asked for it"
                time.sleep(0.05)
            assert not done
            # Creating the database waits too: two first starts would both find it missing.
            assert not database_exists(url), "the database was created outside the lock"
        worker.join(timeout=120)
        assert done and done[0], "the migration did not finish after the lock was released"
    finally:
        drop_database(url)


def _report(conn, day: str) -> set[str]:
    with conn.cursor() as cur:
        cur.execute("SELECT trans_num FROM fraud_report_for_day(%s::date)", (day,))
        return {r[0] for r in cur.fetchall()}


def _at(conn, times: list[datetime]) -> list[str]:
    frame = scored_payments(len(times))
    frame["trans_time"] = pd.to_datetime(times)
    upsert_scored(conn, frame)
    return list(frame.trans_num)


@pytest.mark.clock
def test_day_boundary_is_midnight_in_the_business_time_zone(conn):
    # 00:30 Paris on the 10th is still the 9th in UTC: the report must follow Paris.
    late, early = _at(
        conn,
        [datetime(2026, 1, 9, 23, 30, tzinfo=PARIS), datetime(2026, 1, 10, 0, 30, tzinfo=PARIS)],
    )
    assert _report(conn, "2026-01-09") == {late}
    assert _report(conn, "2026-01-10") == {early}


@pytest.mark.parametrize(
    ("day", "hours"), [("2026-03-29", 23), ("2026-10-25", 25)], ids=["spring", "autumn"]
)
@pytest.mark.clock
def test_daylight_saving_days_have_their_true_length(conn, day, hours):
    start = datetime.fromisoformat(day).replace(tzinfo=PARIS)
    utc_start = start.astimezone(ZoneInfo("UTC"))
    # One payment every 30 minutes of real (UTC) time, from 2 h before to 2 h after the day.
    times = [utc_start + timedelta(minutes=30 * i) for i in range(-4, hours * 2 + 4)]
    ids = _at(conn, times)
    inside = {
        t
        for t, when in zip(ids, times, strict=True)
        if when.astimezone(PARIS).date().isoformat() == day
    }
    assert len(inside) == hours * 2
    assert _report(conn, day) == inside


@pytest.mark.clock
def test_view_is_yesterday_in_the_configured_time_zone(conn):
    # The view's "yesterday" is the database's (SQL now()), which FRAUD_NOW / --now cannot
    # freeze: this test and the next one read the real clock on purpose.
    kiritimati = ZoneInfo("Pacific/Kiritimati")  # UTC+14: its "yesterday" differs from Paris's
    paris_noon = (datetime.now(PARIS) - timedelta(days=1)).replace(hour=12, minute=0)
    kiritimati_noon = (datetime.now(kiritimati) - timedelta(days=1)).replace(hour=12, minute=0)
    _now, in_paris, in_kiritimati = _at(
        conn, [datetime.now(PARIS), paris_noon, kiritimati_noon.astimezone(PARIS)]
    )
    with conn.cursor() as cur:
        cur.execute("SELECT trans_num, report_day FROM v_daily_fraud_report")
        paris_rows = set(cur.fetchall())
        assert (in_paris, paris_noon.date()) in paris_rows
        assert all(day == paris_noon.date() for _, day in paris_rows)
        cur.execute(
            "UPDATE app_settings SET value = 'Pacific/Kiritimati' WHERE key = 'business_tz'"
        )
        cur.execute("SELECT trans_num, report_day FROM v_daily_fraud_report")
        kiritimati_rows = set(cur.fetchall())
        assert (in_kiritimati, kiritimati_noon.date()) in kiritimati_rows
        assert all(day == kiritimati_noon.date() for _, day in kiritimati_rows)
    conn.rollback()


@pytest.mark.clock
def test_report_reader_role_reads_only_the_report(conn):
    _at(conn, [datetime.now(PARIS) - timedelta(days=1)])
    with conn.cursor() as cur:
        cur.execute("SET ROLE fraud_report_reader")
        cur.execute("SELECT count(*) FROM v_daily_fraud_report")
        assert cur.fetchone()[0] == 1
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute("SELECT card_token FROM payments_scored")
    conn.rollback()


def test_no_full_card_number_anywhere_in_the_database(conn):
    frame = scored_payments(2_000)
    upsert_scored(conn, frame)
    card_numbers = set(real_rows().cc_num.iloc[:2_000])
    with conn.cursor() as cur:  # a dump of every row of every table, as text
        cur.execute(
            "SELECT schemaname, tablename FROM pg_tables "
            "WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
        )
        dump = []
        for schema, table in cur.fetchall():
            cur.execute(f'SELECT t::text FROM "{schema}"."{table}" t')
            dump.extend(r[0] for r in cur.fetchall())
    text = "\n".join(dump)
    assert len(dump) >= 2_000 and "card_token" not in text  # rows, not column names
    leaked = [n for n in card_numbers if n in text]
    assert leaked == []
    assert all(n[-4:] in text for n in list(card_numbers)[:50])  # the last four digits are kept
