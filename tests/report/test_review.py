"""Triage and measured quality (issue 16): the To review page and the report's verdict figures.

AppTest against the seeded PostgreSQL. Expected numbers come from independent SQL on the owner's
tables, or from verdicts written here with known counts.
"""

from __future__ import annotations

import re
from datetime import timedelta

import psycopg2
import pytest
from streamlit.testing.v1 import AppTest

from fraud_pipeline.config import get_settings
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
def test_the_signed_in_analyst_triages_alerts_and_episodes(
    seeded: SeededDay, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DASHBOARD_USER", "r.martin")
    get_settings.cache_clear()
    app = open_page(signed_in(user="r.martin"), "review")
    assert not app.error, [e.value for e in app.error]
    queue = [
        r[0]
        for r in seeded.rows(
            "SELECT trans_num FROM payments_scored WHERE is_fraud_pred "
            "ORDER BY fraud_probability DESC, trans_time, trans_num"
        )
    ]
    page = "\n".join(m.value for m in app.markdown)
    assert f"`{queue[0]}`" in page.split("\n- ")[0]  # the riskiest alert comes first
    assert f"{len(queue):,} alerts without a verdict" in app.caption[0].value
    assert not re.search(r"\d{12,19}", page)  # masked cards only
    history = table_with(app, "Verdict")[0]
    assert history["Card"].str.fullmatch(r"\*{4} \*{4} \*{4} \d{4}").all()
    assert queue[0] in set(history["Transaction"])

    # One alert, with a note; the name is the login's.
    app.text_input(key=f"note-{queue[0]}").input("cardholder called: not them")
    app.button(key=f"confirmed_fraud-{queue[0]}").click().run()
    assert not app.exception, app.exception
    assert reviewed(seeded) == [
        (queue[0], "confirmed_fraud", "cardholder called: not them", "r.martin")
    ]
    assert "confirmed fraud (1 verdict, by r.martin)" in app.success[0].value
    assert f"`{queue[0]}`" not in "\n".join(m.value for m in app.markdown)

    # A card's whole episode at once: every unreviewed alert of that card.
    bulk = [b for b in app.button if (b.key or "").startswith("false_alarm-episode-")]
    assert bulk, "the seeded frauds include a card with several alerts"
    episode = bulk[0].key.removeprefix("false_alarm-episode-")
    card = seeded.rows(
        "SELECT trans_num FROM payments_scored WHERE is_fraud_pred AND card_token = "
        "(SELECT card_token FROM payments_scored WHERE trans_num = %(t)s) "
        "AND trans_num <> %(first)s",
        t=episode,
        first=queue[0],
    )
    bulk[0].click().run()
    assert not app.exception, app.exception
    written = reviewed(seeded)[1:]
    assert sorted(t for t, *_ in written) == sorted(r[0] for r in card)
    assert {(v, n, a) for _, v, n, a in written} == {("false_alarm", None, "r.martin")}


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
