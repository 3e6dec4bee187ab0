"""Never lose a payment, never leak a card number: poison rows through the DAG's own steps, run
minute after minute, and through `fraud-pipeline run-interval` (issue #13)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from fraud_pipeline import cli
from fraud_pipeline.config import get_settings
from fraud_pipeline.ingest.extract import ExtractError, fetch_window
from fraud_pipeline.pipeline import steps
from fraud_pipeline.pipeline.results import RunId
from fraud_pipeline.storage import quarantine
from fraud_pipeline.storage.db import connect
from tests.support.cards import database_text, leaks, luhn_number
from tests.support.factories import real_rows
from tests.support.hostile_api import hostile_api, time_formats

START = pd.Timestamp("2026-03-01 12:00", tz="UTC")
MINUTES = 12
CARDS = [luhn_number("4539"), luhn_number("5105"), luhn_number("3714", 15)]


def _items() -> tuple[list, dict[str, pd.Timestamp], dict[str, str]]:
    """36 payments 20 s apart in mixed time formats, poison among them; the expected instants
    of the good ones and the reasons of the bad ones."""
    records = json.loads(real_rows().head(36).to_json(orient="records"))
    items, good, bad = [], {}, {}
    for i, record in enumerate(records):
        when = START + pd.Timedelta(seconds=20 * i + 5)
        record["trans_date_trans_time"] = time_formats(when)[i % 4]
        items.append((when, record))
        good[record["trans_num"]] = when
    poison = {
        1: ("street", ["a", ["b"]], "street: expected text, got list"),
        9: ("amt", True, "amt: expected a number, got bool"),
    }
    for i, (field, value, reason) in poison.items():
        record = items[i][1]
        record[field] = value
        del good[record["trans_num"]]
        bad[record["trans_num"]] = reason
    items[4][1]["card_number"] = CARDS[0]  # unknown field: dropped, the payment stored
    items[5][1]["merchant"] = f"fraud_Shop {CARDS[1]}"  # free text: masked, stored
    items[9][1]["street"] = f"{CARDS[2]} Main St"  # free text of a quarantined payment
    for j, value in enumerate([42, None, "x"]):
        items.append((START + pd.Timedelta(minutes=3, seconds=j), value))
    return items, good, bad


def _check_outcome(conn, good, bad, mail, caplog) -> None:
    with conn.cursor() as cur:
        cur.execute("SELECT trans_num, trans_time FROM payments_scored")
        stored = dict(cur.fetchall())
        cur.execute("SELECT trans_num, reason, payload::text FROM payments_quarantine")
        quarantined = cur.fetchall()
        cur.execute(
            "SELECT (SELECT count(*) FROM payments_landing), (SELECT count(*) FROM payments_inbox)"
        )
        assert cur.fetchone() == (0, 0)  # nothing left behind to block a later run
    assert set(stored) == set(good)
    for trans_num, when in good.items():
        assert pd.Timestamp(stored[trans_num]) == when, trans_num
    by_key = {q[0]: q[1] for q in quarantined if q[0]}
    assert by_key == bad  # each poison row exactly once, with its own reason
    assert sorted(q[1] for q in quarantined if not q[0]) == [
        f"payment is not an object: {t}" for t in ("int", "null", "str")
    ]
    emails = " ".join(m.as_string() for m in mail.messages())
    assert not leaks(CARDS, database_text(conn.dsn) + caplog.text + emails)
    assert "card_number" in caplog.text  # the unknown field's name is logged


def test_poison_rows_through_the_dag_steps_minute_after_minute(services, caplog):
    items, good, bad = _items()
    with hostile_api(items) as url:
        settings = services.settings.model_copy(update={"payments_api_url": url})
        conn = connect()
        try:
            for minute in range(MINUTES):
                lo = (START + pd.Timedelta(minutes=minute)).to_pydatetime()
                hi = (START + pd.Timedelta(minutes=minute + 1)).to_pydatetime()
                run_id = f"scheduled__{lo.isoformat()}"
                # the DAG's tasks in order: ingest -> score_and_load -> alert (-> shadow)
                steps.run_interval(conn, lo, hi, run_id=run_id, settings=settings)
            _check_outcome(conn, good, bad, services.mail, caplog)

            # Inspect and re-queue: the row is judged again, quarantined again, once.
            listed = quarantine.list_quarantined(conn, reason="street")
            assert [q.trans_num for q in listed] == [items[1][1]["trans_num"]]
            shown = quarantine.show(conn, listed[0].id)
            assert shown is not None and shown.payload["street"] == ["a", ["b"]]
            assert quarantine.retry(conn, [listed[0].id]) == [listed[0].id]
            steps.validate(conn, RunId("retry"))
            _check_outcome(conn, good, bad, services.mail, caplog)
        finally:
            conn.close()


def test_poison_rows_through_run_interval(services, monkeypatch, capsys, caplog):
    items, good, bad = _items()
    with hostile_api(items) as url:
        monkeypatch.setenv("PAYMENTS_API_URL", url)
        get_settings.cache_clear()
        end = START + pd.Timedelta(minutes=MINUTES)
        argv = ["run-interval", "--start", START.isoformat(), "--end", end.isoformat()]
        assert cli.main([*argv, "--chunk-minutes", "5"]) == 0
        conn = connect()
        try:
            _check_outcome(conn, good, bad, services.mail, caplog)
        finally:
            conn.close()


def test_a_malformed_page_is_logged_masked_and_the_cli_prints_no_traceback(
    services, monkeypatch, capsys, caplog
):
    page = {"oops": [{"cc_num": CARDS[0]}], "note": f"card {CARDS[1]}"}
    with hostile_api([], malformed=page) as url:
        settings = services.settings.model_copy(update={"payments_api_url": url})
        with pytest.raises(ExtractError) as raised:
            fetch_window(START.to_pydatetime(), (START + pd.Timedelta(minutes=1)), settings)
        assert not leaks(CARDS, str(raised.value) + caplog.text)
        assert "malformed" in str(raised.value)

        monkeypatch.setenv("PAYMENTS_API_URL", url)
        get_settings.cache_clear()
        end = START + pd.Timedelta(minutes=1)
        argv = ["run-interval", "--start", START.isoformat(), "--end", end.isoformat()]
        assert cli.main(argv) == 1
        out, err = capsys.readouterr()
        assert "ERROR: run-interval: payments API page is malformed" in err
        assert "Traceback" not in out + err
        assert not leaks(CARDS, out + err + caplog.text)
