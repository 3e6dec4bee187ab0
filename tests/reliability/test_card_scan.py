"""The suite's card-number scan (`no_card_number_left`, after every test here) finds what it
must: an unmasked card number left in a table, in a log record's exception, in a mail (base64
encoded). Were masking broken anywhere, the scan would name the place."""

from __future__ import annotations

import json
import logging
from email.message import EmailMessage

import psycopg2

from fraud_pipeline.ingest.cards import mask_card_numbers
from tests.support.cards import IN_FREE_TEXT, IN_UNKNOWN_FIELD, found_in, mail_places, scan
from tests.support.runs import card_leaks


def failed_record(number: str) -> logging.LogRecord:
    """A task log record whose exception quotes a card number (not logged: made by hand, so
    that this test's own scan does not see it)."""
    try:
        raise ValueError(f"payments API answered 500: cc_num {number}")
    except ValueError as error:
        return logging.makeLogRecord(
            {"name": "airflow.task", "msg": "Task failed", "exc_info": (type(error), error, None)}
        )


def test_the_scan_names_each_place_an_unmasked_card_number_was_left(clean_db, tmp_path):
    payload = {"merchant": f"fraud_Shop {IN_FREE_TEXT}"}
    with psycopg2.connect(clean_db) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO payments_quarantine (trans_num, reason, payload, payload_hash, run_id) "
            "VALUES ('t1', 'planted', %s, 'h1', 'scan')",
            (json.dumps(payload),),
        )
    conn.close()
    mail = EmailMessage()
    mail["Subject"] = "fraud alert"
    mail.set_content(f"payment t1\ncard {IN_UNKNOWN_FIELD}\n", cte="base64")
    (tmp_path / "1.eml").write_bytes(mail.as_bytes())
    try:
        leaks = card_leaks(None, [clean_db], [failed_record(IN_UNKNOWN_FIELD)])
        assert any("table payments_quarantine" in hit for hit in leaks), leaks
        assert any("log record of airflow.task" in hit for hit in leaks), leaks
        assert not any(IN_FREE_TEXT in hit for hit in leaks)  # named by its last four only

        in_mail = scan([IN_UNKNOWN_FIELD], mail_places(tmp_path))
        assert any("part text/plain" in hit for hit in in_mail), in_mail
    finally:
        with psycopg2.connect(clean_db) as conn, conn.cursor() as cur:
            cur.execute("DELETE FROM payments_quarantine WHERE run_id = 'scan'")
        conn.close()


def test_the_scan_finds_grouped_and_embedded_numbers_and_passes_masked_ones():
    grouped = " ".join(IN_FREE_TEXT[i : i + 4] for i in range(0, 16, 4))
    assert found_in([IN_FREE_TEXT], f"card {grouped}") == {IN_FREE_TEXT}
    assert found_in([IN_FREE_TEXT], f"card {grouped.replace(' ', '-')}") == {IN_FREE_TEXT}
    assert found_in([IN_FREE_TEXT], f"ref 99{IN_FREE_TEXT}01") == {IN_FREE_TEXT}
    text = f"card {IN_FREE_TEXT}, grouped {grouped}"
    assert found_in([IN_FREE_TEXT], mask_card_numbers(text)) == set()
