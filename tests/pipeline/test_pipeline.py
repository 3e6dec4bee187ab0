"""Every pipeline step against the real PostgreSQL, payments API, model server and SMTP server."""

from __future__ import annotations

import math
import re

import numpy as np
import psycopg2
import pytest

from fraud_devstack.stack.generate import payments_between
from fraud_pipeline.alerting.alerts import MAX_PER_EMAIL
from fraud_pipeline.ingest.payments import to_payments
from fraud_pipeline.model.artifacts import load_model
from fraud_pipeline.pipeline.steps import run_interval
from fraud_pipeline.storage.db import connect
from tests.support.servers import night_window


def _count(conn, sql: str) -> int:
    with conn.cursor() as cur:
        cur.execute(sql)
        return int(cur.fetchone()[0])


def _alerted(messages) -> list[str]:
    """The trans_num of every fraud in these alert emails, in order, repeats kept."""
    return [
        trans_num
        for message in messages
        for trans_num in re.findall(
            r"^\s*payment (\S+)\s*$", message.get_body(("plain",)).get_content(), re.M
        )
    ]


def _flagged(conn) -> set[str]:
    with conn.cursor() as cur:
        cur.execute("SELECT trans_num FROM payments_scored WHERE is_fraud_pred")
        return {row[0] for row in cur.fetchall()}


@pytest.mark.clock
def test_an_interval_is_scored_stored_and_alerted_once(services):
    """Each fraud alerted exactly once, however many emails the night needs (500 per email)."""
    start, end = night_window()
    conn = connect()
    try:
        summary = run_interval(conn, start.to_pydatetime(), end.to_pydatetime(), run_id="r1")
        expected = payments_between(start, end, seed=11, rate_per_min=40)
        assert summary.ingested.fetched == len(expected) > 100
        assert _count(conn, "SELECT count(*) FROM payments_scored") == len(expected)
        assert _count(conn, "SELECT count(*) FROM payments_inbox") == 0
        # Scores equal the model's in-process scores for the same payments and history.
        model = load_model()
        payments = to_payments(expected)
        reference = dict(
            zip(payments["trans_num"], model.predict(model.features(payments)), strict=True)
        )
        with conn.cursor() as cur:
            cur.execute(
                "SELECT trans_num, fraud_probability, model_version, is_fraud_pred, threshold, "
                "jsonb_array_length(reasons) FROM payments_scored"
            )
            rows = cur.fetchall()
        np.testing.assert_allclose([r[1] for r in rows], [reference[r[0]] for r in rows], atol=1e-6)
        assert {r[2] for r in rows} == {model.version}
        assert all(r[3] == (r[1] >= r[4]) for r in rows)
        assert all(r[5] >= 1 for r in rows if r[3])  # every flagged payment says why
        flagged = _flagged(conn)
        assert flagged
        messages = services.mail.messages()
        # One email per run (split every MAX_PER_EMAIL frauds), not one per fraud.
        assert len(messages) == summary.alerts["emails"] == math.ceil(len(flagged) / MAX_PER_EMAIL)
        alerted = _alerted(messages)
        assert len(alerted) == len(set(alerted)) and set(alerted) == flagged  # each exactly once
        # The same interval again: nothing new stored, nothing sent.
        again = run_interval(conn, start.to_pydatetime(), end.to_pydatetime(), run_id="r1-again")
        assert again.ingested.new == 0 and again.loaded.loaded == 0
        assert again.alerts["emails"] == 0
        assert len(services.mail.messages()) == len(messages)
        assert _count(conn, "SELECT count(*) FROM payments_scored") == len(expected)
    finally:
        conn.close()


@pytest.mark.clock
def test_no_full_card_number_in_database_or_email(services):
    start, end = night_window(1.0)
    conn = connect()
    try:
        run_interval(conn, start.to_pydatetime(), end.to_pydatetime(), run_id="cards")
        numbers = set(payments_between(start, end, seed=11, rate_per_min=40)["cc_num"])
        with conn.cursor() as cur:
            cur.execute("SELECT string_agg(t::text, ' ') FROM payments_scored t")
            dump = cur.fetchone()[0]
        emails = " ".join(m.as_string() for m in services.mail.messages())
        assert numbers and not [n for n in numbers if n in dump or n in emails]
    finally:
        conn.close()


@pytest.mark.clock
def test_endpoint_down_keeps_payments_pending_until_it_is_back(services):
    from fraud_pipeline.serving.endpoint import EndpointClient, EndpointUnavailable, runtime_client

    start, end = night_window(1.0)
    conn = connect()
    down = EndpointClient(
        runtime_client(
            services.settings.model_copy(update={"sagemaker_endpoint_url": "http://127.0.0.1:9"})
        ),
        "fraud-xgboost",
        max_attempts=2,
        base_delay_s=0.01,
    )
    try:
        with pytest.raises(EndpointUnavailable):
            run_interval(
                conn, start.to_pydatetime(), end.to_pydatetime(), run_id="down", client=down
            )
        pending = _count(conn, "SELECT count(*) FROM payments_inbox")
        assert pending > 0 and _count(conn, "SELECT count(*) FROM payments_scored") == 0
        # The endpoint is back: the next run (a later, empty interval) scores what was pending.
        later = run_interval(conn, end.to_pydatetime(), end.to_pydatetime(), run_id="later")
        assert later.loaded.loaded == 0  # the claim of the dead run is not stale yet
        with conn, conn.cursor() as cur:  # as if STALE_CLAIM had passed
            cur.execute("UPDATE payments_inbox SET claimed_at = claimed_at - interval '1 hour'")
        recovered = run_interval(conn, end.to_pydatetime(), end.to_pydatetime(), run_id="recovered")
        assert recovered.loaded.loaded == pending
        assert _count(conn, "SELECT count(*) FROM payments_inbox") == 0
        assert sorted(_alerted(services.mail.messages())) == sorted(_flagged(conn))
    finally:
        conn.close()


@pytest.mark.clock
def test_smtp_down_keeps_alerts_pending_and_sends_them_once_later(services):
    start, end = night_window(1.0)
    conn = connect()
    try:
        services.mail.stop()
        from fraud_pipeline.alerting.alerts import AlertError

        with pytest.raises(AlertError, match="refused the alert"):
            run_interval(conn, start.to_pydatetime(), end.to_pydatetime(), run_id="smtp-down")
        pending = _count(
            conn, "SELECT count(*) FROM payments_scored WHERE is_fraud_pred AND alerted_at IS NULL"
        )
        assert pending > 0
        services.mail.start()
        run_interval(conn, end.to_pydatetime(), end.to_pydatetime(), run_id="smtp-up")
        run_interval(conn, end.to_pydatetime(), end.to_pydatetime(), run_id="smtp-up-2")
        assert sorted(_alerted(services.mail.messages())) == sorted(_flagged(conn))
        assert (
            _count(
                conn,
                "SELECT count(*) FROM payments_scored WHERE is_fraud_pred AND alerted_at IS NULL",
            )
            == 0
        )
    finally:
        conn.close()


def test_quarantine_keeps_bad_rows_with_reasons(clean_db):

    from fraud_pipeline.ingest.extract import to_records
    from fraud_pipeline.pipeline.steps import validate
    from tests.support.factories import real_rows

    raw = real_rows().head(6).copy()
    raw.loc[0, "amt"] = -5
    raw.loc[1, "category"] = "'; DROP TABLE payments_scored; --"
    raw.loc[2, "cc_num"] = "12ab"
    raw.loc[3, "lat"] = 123.0
    records = to_records(raw)
    conn = psycopg2.connect(clean_db)
    try:
        with conn, conn.cursor() as cur:
            for record in records.to_dict(orient="records"):
                import json

                from fraud_pipeline.pipeline.steps import _json_safe

                cur.execute(
                    "INSERT INTO payments_landing (run_id, trans_num, payload) VALUES ('q', %s, %s)",
                    (record["trans_num"], json.dumps(_json_safe(record))),
                )
        first = validate(conn, "q")
        assert (first.good, first.quarantined) == (2, 4)
        with conn.cursor() as cur:
            cur.execute("SELECT reason, payload::text FROM payments_quarantine ORDER BY reason")
            rows = cur.fetchall()
            cur.execute("SELECT count(*) FROM payments_scored")  # the table is still there
        reasons = " | ".join(r[0] for r in rows)
        for expected in ("amt outside", "unknown category", "card number invalid", "lat outside"):
            assert expected in reasons
        assert "12ab" not in " ".join(r[1] for r in rows)  # even an invalid card is masked
        assert first.new == 2  # the good rows wait in the inbox
    finally:
        conn.close()


@pytest.mark.clock
def test_the_backfill_path_stores_what_the_dag_steps_store(services):
    """A back-fill chunk (`process_interval`: fetched ahead in memory, admitted to the inbox
    under its own batch) stores exactly what the DAG's tasks (`run_interval`) store; again,
    nothing."""
    from fraud_pipeline.model.artifacts import load_model
    from fraud_pipeline.pipeline.results import RunId
    from fraud_pipeline.pipeline.steps import process_interval
    from fraud_pipeline.serving.endpoint import EndpointClient

    start, end = night_window(hours=1)
    halves = [(start, start + (end - start) / 2), (start + (end - start) / 2, end)]
    query = (
        "SELECT trans_num, card_token, amt, fraud_probability, is_fraud_pred, reasons, "
        "model_version FROM payments_scored ORDER BY trans_num"
    )
    conn = connect()
    try:
        for lower, upper in halves:
            run_interval(conn, lower.to_pydatetime(), upper.to_pydatetime(), send_alerts=False)
        with conn.cursor() as cur:
            cur.execute(query)
            by_steps = cur.fetchall()
            cur.execute("TRUNCATE payments_scored CASCADE")  # and its reviews
        conn.commit()
        model, client = load_model(), EndpointClient.from_settings()
        for number, (lower, upper) in enumerate(halves * 2):  # the second pass changes nothing
            summary = process_interval(
                conn,
                lower.to_pydatetime(),
                upper.to_pydatetime(),
                run_id=RunId(f"backfill-{number}"),
                model=model,
                client=client,
            )
            came, stored = summary.ingested, summary.loaded
            assert came.quarantined == came.conflicts == stored.refused == 0
            if number < len(halves):
                assert stored.loaded > 0 and came.redelivered == 0
            else:  # the same payments again: stored already, left as they are
                assert stored.loaded == 0 and came.redelivered > 0
        with conn.cursor() as cur:
            cur.execute(query)
            in_memory = cur.fetchall()
    finally:
        conn.close()
    assert len(by_steps) > 500 and any(row[4] for row in by_steps)
    assert [r[:3] + r[4:] for r in in_memory] == [r[:3] + r[4:] for r in by_steps]
    np.testing.assert_allclose([r[3] for r in in_memory], [r[3] for r in by_steps], atol=1e-6)
