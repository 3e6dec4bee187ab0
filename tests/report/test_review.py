"""Triage and measured quality (issue 16): the To review page and the report's verdict figures.

AppTest against the seeded PostgreSQL. Expected numbers come from independent SQL on the owner's
tables, or from verdicts written here with known counts.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta

import psycopg2
import pytest
from streamlit.testing.v1 import AppTest

from fraud_pipeline import wording
from tests.support.report import APP, SeededDay, metrics, signed_in, table_with

DAY_ROWS = "FROM payments_scored WHERE trans_time >= %(lo)s AND trans_time < %(hi)s"


def open_page(app: AppTest, url_path: str) -> AppTest:
    """Go to an st.navigation page of callables (AppTest.switch_page only knows files)."""
    [page_hash] = [
        key for key, info in app._registered_pages.items() if info.get("url_pathname") == url_path
    ]
    app._page_hash = page_hash
    app.run()
    assert not app.exception, app.exception
    return app


def review(seeded: SeededDay, trans_num: str, verdict: str, at: str = "now()") -> None:
    """A verdict written as the owner, at a given time (to order superseding verdicts)."""
    with psycopg2.connect(seeded.url) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO alert_reviews (trans_num, verdict, analyst, reviewed_at) "
            f"VALUES (%s, %s, 'someone', {at})",
            (trans_num, verdict),
        )
    conn.close()


def flagged(seeded: SeededDay, day=None) -> list[str]:
    return [
        r[0]
        for r in seeded.rows(
            f"SELECT trans_num {DAY_ROWS} AND is_fraud_pred ORDER BY fraud_probability DESC, "
            "trans_time, trans_num",
            day,
        )
    ]


@pytest.mark.clock
@pytest.mark.usefixtures("report_env")
def test_quality_figures_follow_the_verdicts_in_force(seeded: SeededDay) -> None:
    alerts = flagged(seeded)
    before = flagged(seeded, seeded.day - timedelta(days=1))
    assert len(alerts) >= 3 and before, "the seeded days need flagged payments"
    with psycopg2.connect(seeded.url) as conn, conn.cursor() as cur:
        cur.execute(
            "UPDATE payments_scored SET model_version = 'older-model' WHERE trans_num = %s",
            (alerts[0],),
        )
    conn.close()
    review(seeded, alerts[0], "confirmed_fraud")
    review(seeded, alerts[1], "false_alarm", "now() - interval '1 hour'")
    review(seeded, alerts[1], "confirmed_fraud")  # supersedes the false alarm
    review(seeded, alerts[2], "false_alarm")
    review(seeded, before[0], "confirmed_fraud")

    app = signed_in()
    assert not app.error, [e.value for e in app.error]
    shown = metrics(app)
    assert shown["Alerts reviewed"][0] == f"3 of {len(alerts):,}"
    assert shown["Confirmed precision"][0] == "66.7%"
    assert shown["Frauds confirmed"][0] == "2"
    assert shown["Confirmed precision, 30 days"] == ("75.0%", "3 confirmed of 4 reviewed")

    [table] = table_with(app, "Period")
    day = f"{seeded.day:%a %d %b}"
    rows = {(r["Period"], r["Model"]): r for r in table.to_dict("records")}
    assert set(rows) == {
        (period, model)
        for period in (day, "30 days")
        for model in ("older-model", "test-model", "All models")
    }
    older = rows[(day, "older-model")]
    assert (older["Alerts"], older["Reviewed"], older["Confirmed precision"]) == (
        "1",
        "1",
        "100.0%",
    )
    newer = rows[(day, "test-model")]
    assert (newer["Alerts"], newer["Reviewed"]) == (f"{len(alerts) - 1:,}", "2")
    assert (newer["Confirmed precision"], newer["Frauds confirmed"]) == ("50.0%", "1")
    # The source's labels, side by side: independent SQL over the day, all model versions.
    tp = seeded.one(f"SELECT count(*) {DAY_ROWS} AND is_fraud = 1 AND is_fraud_pred")
    fp = seeded.one(f"SELECT count(*) {DAY_ROWS} AND is_fraud = 0 AND is_fraud_pred")
    fn = seeded.one(f"SELECT count(*) {DAY_ROWS} AND is_fraud = 1 AND NOT is_fraud_pred")
    everything = rows[(day, "All models")]
    assert everything["Label precision"] == f"{tp / (tp + fp) * 100:.1f}%"
    assert everything["Label recall"] == f"{tp / (tp + fn) * 100:.1f}%"
    assert (everything["Reviewed"], everything["Confirmed precision"]) == ("3", "66.7%")
    window = rows[("30 days", "All models")]
    assert (window["Reviewed"], window["Frauds confirmed"]) == ("4", "3")


@pytest.mark.clock
@pytest.mark.usefixtures("report_env")
def test_no_verdict_yet_reads_as_a_dash(seeded: SeededDay) -> None:
    shown = metrics(signed_in())
    assert shown["Confirmed precision"][0] == "—"
    assert shown["Frauds confirmed"][0] == "0"


def reviewed(seeded: SeededDay) -> list[tuple[str, str, str | None, str]]:
    return seeded.rows(
        "SELECT trans_num, verdict, note, analyst FROM alert_reviews ORDER BY review_id"
    )


@pytest.mark.clock
@pytest.mark.usefixtures("report_env")
def test_the_signed_in_analyst_finds_claims_and_judges_a_case(seeded: SeededDay) -> None:
    app = open_page(signed_in(user="r.martin"), "review")
    assert not app.error, [e.value for e in app.error]
    cards = seeded.rows(
        "SELECT card_last4, array_agg(trans_num ORDER BY trans_time, trans_num) "
        "FROM payments_scored WHERE is_fraud_pred GROUP BY card_token, card_last4 "
        "ORDER BY count(*) DESC, max(fraud_probability) DESC"
    )
    last4, alerts = cards[0][0].strip(), cards[0][1]
    assert len(alerts) > 1, "the seeded frauds include a card with several alerts"
    page = "\n".join(m.value for m in app.markdown)
    assert re.search(r"\*\*[\d,]+\*\* cases match · page 1 of \d+", page)
    assert not re.search(r"\d{12,19}", page)  # masked cards only

    # Search by the card's last 4, open its case, claim it.
    app.text_input(key="q_search").input(last4).run()
    assert not app.exception, app.exception
    app.button(key=f"open-{alerts[0]}").click().run()
    assert app.query_params[wording.CASE_PARAM] == alerts[0]
    app.button(key="claim-case").click().run()
    assert "Case claimed by r.martin." in app.success[0].value
    history = table_with(app, "Verdict")[0]
    assert history["Card"].str.fullmatch(r"\*{4} \*{4} \*{4} \d{4}").all()
    assert set(alerts) <= set(history["Transaction"])
    # Its rows span days: each says its date, not only its time (issue 30).
    [shown] = [d for d in app.dataframe if "Date and time" in d.proto.columns]
    assert json.loads(shown.proto.columns)["Time"]["type_config"]["format"] == (
        "ddd DD MMM YYYY, HH:mm:ss"
    )

    # One alert, with a note; the name is the login's.
    app.text_input(key=f"note-{alerts[0]}").input("cardholder called: not them")
    app.button(key=f"confirmed_fraud-{alerts[0]}").click().run()
    assert not app.exception, app.exception
    assert reviewed(seeded) == [
        (alerts[0], "confirmed_fraud", "cardholder called: not them", "r.martin")
    ]
    assert "confirmed fraud (1 verdict, by r.martin)" in app.success[0].value

    # The whole episode at once: every alert of the case still without a verdict.
    app.button(key="false_alarm-case").click().run()
    assert not app.exception, app.exception
    written = reviewed(seeded)[1:]
    assert sorted(t for t, *_ in written) == sorted(alerts[1:])
    assert {(v, n, a) for _, v, n, a in written} == {("false_alarm", None, "r.martin")}
    notes = table_with(app, "Note")[0]
    assert len(notes) == len(alerts) and set(notes["Who"]) == {"r.martin"}


@pytest.mark.usefixtures("report_env")
def test_the_three_pages_open_only_after_sign_in() -> None:
    app = AppTest.from_file(APP, default_timeout=60)
    app.run()
    assert not app.exception, app.exception
    assert [t.value for t in app.title] == [":material/shield: Morning fraud report"]  # login
    app = signed_in()
    pages = [info.get("url_pathname") for info in app._registered_pages.values()]
    assert pages == ["", "review", "model-health"]
    assert open_page(app, "model-health").title[0].value == "Model health"
