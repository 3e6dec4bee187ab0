"""Card numbers exist only in the payments API's answer: after extract they are tokenised.

A real run (payments API, model server, SMTP server, PostgreSQL) over a past night; then the
full card number of every payment served is searched for everywhere the pipeline writes: every
table of the database, the alert emails as sent (raw bytes), every log record (all loggers,
DEBUG), and what the morning report shows and downloads (read as fraud_report_reader).
"""

from __future__ import annotations

import logging

import psycopg2
import pytest
from sqlalchemy import create_engine

from fraud_devstack.stack.generate import payments_between
from fraud_pipeline.ingest.cards import mask_last4
from fraud_pipeline.ingest.extract import to_records
from fraud_pipeline.ingest.validate import validate
from fraud_pipeline.pipeline.steps import run_interval
from fraud_pipeline.report import queries
from tests.support.factories import real_rows
from tests.support.servers import Services, night_window


def database_dump(url: str) -> str:
    """Every row of every table of the database, as text (what pg_dump's data would hold)."""
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables "
            "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') "
            # other sessions' temporary tables (pg_dump has none) vanish as those sessions end
            "AND NOT pg_is_other_temp_schema(to_regnamespace(quote_ident(schemaname)))"
        )
        rows = []
        for (table,) in cur.fetchall():
            cur.execute(f"SELECT t::text FROM {table} t")  # names from the catalogue
            rows.extend(row[0] for row in cur.fetchall())
    conn.close()
    return "\n".join(rows)


def test_no_full_card_number_after_extract(services: Services, clean_db, caplog):
    caplog.set_level(logging.DEBUG)
    start, end = night_window(hours=0.5)
    served = payments_between(start, end, seed=11, rate_per_min=40)  # what the API serves
    numbers = set(served["cc_num"].astype(str))
    assert len(numbers) > 100 and all(len(n) >= 11 for n in numbers)

    conn = psycopg2.connect(clean_db)
    try:
        summary = run_interval(conn, start.to_pydatetime(), end.to_pydatetime())
    finally:
        conn.close()
    assert summary.loaded.loaded == len(served)
    assert summary.alerts["frauds_alerted"] > 0

    dump = database_dump(clean_db)
    emails = b"".join(p.read_bytes() for p in services.mail.maildir.glob("*.eml")).decode()
    logs = caplog.text
    reader = create_engine(queries.sqlalchemy_url(queries.report_database_url()))
    try:
        day = start.tz_convert(services.settings.tz).date()
        flagged = queries.flagged_payments(reader, day)
        shown = queries.frauds_table(flagged).to_string()
        download = queries.to_csv(queries.filtered_payments(reader, day, queries.PaymentFilter()))
    finally:
        reader.dispose()
    places = {
        "database": dump,
        "emails": emails,
        "logs": logs,
        "report": shown,
        "report CSV": download.decode(),
    }
    for place, text in places.items():
        leaked = sorted(n for n in numbers if n in text)
        assert leaked == [], f"{len(leaked)} full card numbers in the {place}"

    # What is kept instead: the token and last four digits in the database, masked in emails.
    last4 = {n[-4:] for n in numbers}
    assert sum(f'"{d}"' in dump or f",{d}," in dump for d in last4) > len(last4) / 2
    assert any(mask_last4(d) in emails for d in last4)
    assert len(flagged) == summary.alerts["frauds_alerted"]


@pytest.mark.parametrize("number", ["4111-1111-1111-1111", "41111111111111111111111", "411111111"])
def test_an_unreadable_card_number_is_quarantined_masked(number: str) -> None:
    """Not a card number (dashes, too long, too short): quarantined with a masked form only."""
    raw = real_rows().head(2).drop(columns=["unix_time"]).copy()
    raw["cc_num"] = number
    checked = validate(to_records(raw))
    assert checked.good.empty and "cc_num" not in checked.bad.columns
    assert checked.bad["reason"].str.contains("card number invalid").all()
    assert checked.bad["card_masked"].eq(f"<invalid: {len(number)} chars>").all()
    assert number not in checked.bad.astype(str).to_string()
