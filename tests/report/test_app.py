"""The Streamlit page itself (AppTest), against the seeded PostgreSQL: what an analyst sees."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest

from fraud_pipeline.config import get_settings
from fraud_pipeline.net import free_port
from fraud_pipeline.storage import db
from tests.support.report import PASSWORD, SeededDay, metrics, signed_in, table_with

DAY_ROWS = "FROM payments_scored WHERE trans_time >= %(lo)s AND trans_time < %(hi)s"


def number(text: str) -> float:
    """'$55,102.54' / '21,252' / '0.64%' / '+17 vs Fri' -> the number it shows."""
    match = re.search(r"[-+−]?\$?[\d,]+(\.\d+)?", text)
    assert match, text
    return float(match.group().replace("$", "").replace(",", "").replace("−", "-"))


@pytest.mark.clock
@pytest.mark.usefixtures("report_env")
def test_every_number_on_the_page_equals_sql(seeded: SeededDay) -> None:
    app = signed_in()
    assert not app.error, [e.value for e in app.error]
    shown = metrics(app)
    before = seeded.day - timedelta(days=1)
    payments = seeded.one(f"SELECT count(*) {DAY_ROWS}")
    payments_before = seeded.one(f"SELECT count(*) {DAY_ROWS}", before)
    frauds = seeded.one(f"SELECT count(*) {DAY_ROWS} AND is_fraud_pred")
    frauds_before = seeded.one(f"SELECT count(*) {DAY_ROWS} AND is_fraud_pred", before)
    at_risk = float(seeded.one(f"SELECT sum(amt) {DAY_ROWS} AND is_fraud_pred"))
    at_risk_before = float(seeded.one(f"SELECT sum(amt) {DAY_ROWS} AND is_fraud_pred", before))
    assert number(shown["Payments"][0]) == payments
    assert number(shown["Payments"][1] or "") == round(
        (payments - payments_before) / payments_before * 100, 1
    )
    assert number(shown["Frauds detected"][0]) == frauds
    assert number(shown["Frauds detected"][1] or "") == frauds - frauds_before
    assert number(shown["Amount at risk"][0]) == pytest.approx(at_risk, abs=0.005)
    assert number(shown["Amount at risk"][1] or "") == pytest.approx(
        at_risk - at_risk_before, abs=0.005
    )
    assert number(shown["Share flagged"][0]) == round(frauds / payments * 100, 2)

    # How the model did, from the true labels.
    tp = seeded.one(f"SELECT count(*) {DAY_ROWS} AND is_fraud = 1 AND is_fraud_pred")
    fp = seeded.one(f"SELECT count(*) {DAY_ROWS} AND is_fraud = 0 AND is_fraud_pred")
    fn = seeded.one(f"SELECT count(*) {DAY_ROWS} AND is_fraud = 1 AND NOT is_fraud_pred")
    assert number(shown["Precision"][0]) == round(tp / (tp + fp) * 100, 1)
    assert number(shown["Recall"][0]) == round(tp / (tp + fn) * 100, 1)
    assert number(shown["Missed frauds"][0]) == fn
    missed = float(
        seeded.one(
            f"SELECT coalesce(sum(amt), 0) {DAY_ROWS} AND is_fraud = 1 AND NOT is_fraud_pred"
        )
    )
    assert number(shown["Missed frauds"][1] or "") == pytest.approx(missed, abs=0.005)
    assert number(shown["False alarms"][0]) == fp

    # The frauds table, then the first page of all payments.
    frauds_table, payments_table = table_with(app, "Transaction")
    expected = seeded.rows(
        f"SELECT trans_num {DAY_ROWS} AND is_fraud_pred "
        "ORDER BY fraud_probability DESC, trans_time, trans_num"
    )
    assert list(frauds_table["Transaction"]) == [r[0] for r in expected]
    assert frauds_table["Card"].str.fullmatch(r"\*{4} \*{4} \*{4} \d{4}").all()
    assert len(payments_table) == 50
    first_page = seeded.rows(f"SELECT trans_num {DAY_ROWS} ORDER BY trans_time LIMIT 50")
    assert list(payments_table["Transaction"]) == [r[0] for r in first_page]
    assert any(f"**{payments:,}** payments match" in m.value for m in app.markdown)

    # Stale scores (the factories' date from March 2026): the page says the pipeline stalled.
    assert any("stalled" in w.value for w in app.warning)
    charts = app.get("vega_lite_chart")
    assert len(charts) == 4
    assert "albersUsa" in charts[3].proto.spec  # the map draws without any tile server


@pytest.mark.clock
@pytest.mark.usefixtures("report_env")
def test_filters_narrow_the_payments(seeded: SeededDay) -> None:
    app = signed_in()
    app.multiselect(key="f_category").select("grocery_pos").run()
    app.slider(key="f_prob").set_value((0.5, 1.0)).run()
    expected = seeded.one(
        f"SELECT count(*) {DAY_ROWS} AND category = 'grocery_pos' AND fraud_probability >= 0.5"
    )
    assert any(f"**{expected:,}** payments match" in m.value for m in app.markdown)
    table = table_with(app, "Transaction")[1]
    assert len(table) == min(expected, 50)
    assert set(table["Category"]) == {"grocery_pos"} and (table["Probability"] >= 0.5).all()


@pytest.mark.clock
@pytest.mark.usefixtures("report_env")
def test_wrong_password_is_refused(seeded: SeededDay) -> None:
    app = signed_in(password=PASSWORD + "x")
    assert [e.value for e in app.error] == ["Wrong user or password."]
    assert not app.metric and not app.dataframe


@pytest.mark.clock
@pytest.mark.usefixtures("report_env")
def test_an_empty_day_says_so(seeded: SeededDay) -> None:
    app = signed_in()
    empty = seeded.day - timedelta(days=20)
    app.date_input(key="day").set_value(empty).run()
    assert not app.exception and not app.error
    assert any("No payments were scored" in i.value for i in app.info)
    assert not app.metric


@pytest.mark.usefixtures("report_env")
def test_a_database_that_is_down_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    monkeypatch.setenv(
        "REPORT_DATABASE_URL", f"postgresql://fraud_report_reader@127.0.0.1:{port}/fraud_db"
    )
    get_settings.cache_clear()
    app = signed_in()
    assert not app.exception
    [error] = app.error
    assert "Cannot reach the report database" in error.value and f":{port}" in error.value


@pytest.mark.usefixtures("report_env")
def test_a_missing_view_says_so(monkeypatch: pytest.MonkeyPatch, database_url: str) -> None:
    bare = db.with_database(database_url, f"fraud_bare_{uuid.uuid4().hex[:8]}")
    db.ensure_database(bare)  # exists, never migrated
    try:
        monkeypatch.setenv("REPORT_DATABASE_URL", bare)
        get_settings.cache_clear()
        app = signed_in()
        assert not app.exception
        [error] = app.error
        assert "fraud-pipeline db migrate" in error.value
    finally:
        db.drop_database(bare)


@pytest.mark.clock
@pytest.mark.usefixtures("report_env")
def test_a_link_with_a_day_opens_the_report_on_that_day(seeded: SeededDay) -> None:
    """The catch-up digest and the morning summary link to a day (`wording.report_link`)."""
    before = seeded.day - timedelta(days=1)
    app = signed_in(day=before.isoformat())
    assert not app.exception, app.exception
    assert app.date_input(key="day").value == before
    assert number(metrics(app)["Payments"][0]) == seeded.one(f"SELECT count(*) {DAY_ROWS}", before)


@pytest.mark.clock
@pytest.mark.usefixtures("report_env")
def test_the_page_says_how_many_payments_arrived_late_and_how_late(seeded: SeededDay) -> None:
    """Issue 28: the day's late payments (count, median and longest lateness, beyond the bound),
    from late_payments through fraud_late_payments(day), as the report's read-only role."""
    import psycopg2
    import streamlit as st

    from fraud_pipeline.report import queries

    assert any("No payment arrived late" in c.value for c in signed_in().caption)
    first = seeded.rows(f"SELECT trans_num, trans_time {DAY_ROWS} ORDER BY trans_time LIMIT 3")
    with psycopg2.connect(seeded.url) as conn, conn.cursor() as cur:
        for (trans_num, when), late_s, beyond in zip(
            first, (120.0, 300.0, 5_400.0), (False, False, True), strict=True
        ):
            cur.execute(
                "INSERT INTO late_payments (trans_num, trans_time, fetched_at, late_s, "
                "beyond_bound, run_id) VALUES (%s, %s, %s, %s, %s, 'test')",
                (trans_num, when, when + timedelta(seconds=late_s), late_s, beyond),
            )
    conn.close()
    st.cache_data.clear()  # the page caches its queries for a while
    shown = [c.value for c in signed_in().caption if "arrived after their minute" in c.value]
    assert shown == [
        "3 payments arrived after their minute was fetched (median 5 min, at most 90 min late "
        "when caught), each stored and scored once; 1 of them later than the 10-minute bound "
        "(found by the hourly re-check or a reconciliation)."
    ], shown
    reader = db.connect(seeded.url)
    try:
        late = queries.late_payments(reader, seeded.day)
    finally:
        reader.close()
    assert (late.late, late.beyond_bound, late.max_late_s) == (3, 1, 5_400.0)
