"""The review queue in a real browser (issue 30, `streamlit run`, Debian Chromium): an analyst
filters the queue to today's live alerts, finds a card by its last 4, claims its case and gives
one verdict for the whole episode; a second analyst, opening the alert email's link to that case,
signs in, lands on the case and sees it claimed; the card's history says dates. (docs/queue.png
and docs/case.png come from a real `make run`, README.)"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from fraud_pipeline import clock
from fraud_pipeline.alerting import alerts
from fraud_pipeline.config import get_settings
from fraud_pipeline.security import audit, users
from fraud_pipeline.storage import db
from tests.support.browser import NEEDS_CHROMIUM, sign_in_at, streamlit_report
from tests.support.report import SeededDay

pytestmark = [pytest.mark.browser, pytest.mark.slow, NEEDS_CHROMIUM]


@pytest.fixture
def accounts(seeded: SeededDay) -> dict[str, str]:
    with db.transaction(seeded.url) as cur:
        return {name: users.add(cur, name, "analyst", "cli:test") for name in ("alice", "bob")}


@pytest.fixture
def live_case(seeded: SeededDay) -> tuple[str, str, list[str]]:
    """The card with the most alerts, its alerts moved to the last hours as live alerts; every
    other alert went out in a catch-up digest. Its last 4, its case key, its alerts."""
    last4, token = seeded.rows(
        "SELECT card_last4, card_token FROM payments_scored WHERE is_fraud_pred "
        "GROUP BY card_last4, card_token ORDER BY count(*) DESC, card_token LIMIT 1"
    )[0]
    now = clock.now()
    start = max(now - timedelta(hours=2), clock.day_start(clock.today()))
    with psycopg2.connect(seeded.url) as conn, conn.cursor() as cur:
        cur.execute("UPDATE payments_scored SET alert_kind = 'digest' WHERE is_fraud_pred")
        cur.execute(
            "UPDATE payments_scored p SET alert_kind = 'alert', trans_time = %(start)s "
            "+ (%(now)s - %(start)s) * r.n / (r.total + 1) FROM (SELECT trans_num, "
            "row_number() OVER (ORDER BY trans_time, trans_num) AS n, count(*) OVER () AS total "
            "FROM payments_scored WHERE card_token = %(token)s AND is_fraud_pred) r "
            "WHERE p.trans_num = r.trans_num",
            {"start": start, "now": now, "token": token},
        )
        cur.execute(
            "SELECT trans_num FROM payments_scored WHERE card_token = %s AND is_fraud_pred "
            "ORDER BY trans_time, trans_num",
            (token,),
        )
        trans_nums = [row[0] for row in cur.fetchall()]
    conn.close()
    assert len(trans_nums) > 1
    return last4.strip(), trans_nums[0], trans_nums


@pytest.fixture
def report_server(seeded: SeededDay, accounts: dict[str, str], tmp_path: Path) -> Iterator[str]:
    with streamlit_report(seeded.url, tmp_path / "streamlit.log") as url:
        yield url


def person_at(browser: Any, address: str, name: str, password: str) -> Any:
    """A browser context of its own (its own session) opens `address` and signs in there."""
    page = browser.new_context(viewport={"width": 1440, "height": 2000}).new_page()
    sign_in_at(page, address, name, password)
    return page


def choose(page: Any, key: str, option: str) -> None:
    page.locator(f".st-key-{key}").click()
    page.get_by_role("option", name=option, exact=True).click()


def email_link(seeded: SeededDay, trans_num: str, report_url: str, monkeypatch: Any) -> str:
    """The case link of the alert email that would announce `trans_num`."""
    monkeypatch.setenv("REPORT_URL", report_url)
    get_settings.cache_clear()
    columns = (
        "trans_num, trans_time, card_last4, first, last, merchant, category, amt, "
        "fraud_probability, threshold, model_version, reasons"
    )
    with psycopg2.connect(seeded.url) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT {columns} FROM payments_scored WHERE trans_num = %s", (trans_num,))
        row = cur.fetchone()
        names = [c.name for c in cur.description or ()]
    conn.close()
    message = alerts.render([dict(zip(names, row or (), strict=True))], "test", get_settings())
    text = message.get_body(("plain",)).get_content()
    [link] = re.findall(r"case: (\S+)", text)
    get_settings.cache_clear()
    return str(link)


def test_an_analyst_claims_a_live_case_and_a_second_one_sees_it_claimed(
    report_server: str,
    seeded: SeededDay,
    accounts: dict[str, str],
    live_case: tuple[str, str, list[str]],
    browser: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    last4, key, trans_nums = live_case
    alice = person_at(browser, report_server, "alice", accounts["alice"])
    alice.wait_for_selector('[data-testid="stMetricValue"]', timeout=60_000)
    alice.locator('[data-testid="stSidebarNavLink"]').filter(has_text="To review").click()
    alice.get_by_text("cases match").wait_for(timeout=60_000)
    choose(alice, "q_days", "Today")
    choose(alice, "q_kind", "Live alerts")
    alice.locator(".st-key-q_search input").fill(last4)
    alice.locator(".st-key-q_search input").press("Enter")
    alice.get_by_text("1 cases match · page 1 of 1").wait_for(timeout=60_000)
    # The masked card reads as it is (its asterisks are not Markdown's emphasis).
    line = alice.locator(f".st-key-case-{key}").inner_text()
    assert line.startswith(f"**** **** **** {last4} · "), line
    alice.screenshot(path=tmp_path / "queue.png")
    alice.locator(f".st-key-open-{key} button").click()
    alice.get_by_text("Nobody works this case yet.").wait_for(timeout=60_000)
    alice.locator(".st-key-claim-case button").click()
    alice.get_by_text("Case claimed by alice.").wait_for(timeout=30_000)

    # The second analyst follows the alert email's link: sign-in, then that very case.
    link = email_link(seeded, trans_nums[-1], report_server, monkeypatch)
    assert link == f"{report_server}review?case={trans_nums[-1]}"
    bob = person_at(browser, link, "bob", accounts["bob"])
    bob.get_by_text("Claimed by").wait_for(timeout=60_000)
    assert "/review?case=" in bob.url
    assert bob.get_by_text("alice").count() >= 1
    assert bob.locator(".st-key-confirmed_fraud-case").count() == 0  # no verdict for bob
    history = bob.locator('[data-testid="stDataFrame"]').last
    history.wait_for(timeout=30_000)
    bob.screenshot(path=tmp_path / "case-claimed.png")

    # One verdict for the whole episode, by the analyst who holds the case.
    alice.locator(".st-key-confirmed_fraud-case button").click()
    alice.get_by_text(f"({len(trans_nums)} verdicts, by alice)").wait_for(timeout=30_000)
    alice.screenshot(path=tmp_path / "case.png", full_page=True)
    assert seeded.rows("SELECT trans_num, verdict, analyst FROM alert_reviews ORDER BY 1") == [
        (t, "confirmed_fraud", "alice") for t in sorted(trans_nums)
    ]
    with db.transaction(seeded.url) as cur:
        assert audit.verify(cur).ok
        done = {(e.actor, e.action, e.target) for e in audit.recent(cur, 500)}
    assert ("alice", audit.CASE_CLAIM, key) in done
    assert ("bob", audit.CASE_CLAIM, key) not in done


def test_the_card_history_says_dates(
    report_server: str,
    accounts: dict[str, str],
    live_case: tuple[str, str, list[str]],
    browser: Any,
) -> None:
    """The card's payments span days: the column is "Date and time" (formatted as
    "Mon 07 Dec 2026, 00:23:46", checked under AppTest in test_review.py); the grid's cells hold
    rows of several days."""
    _, key, _ = live_case
    page = person_at(browser, f"{report_server}review?case={key}", "bob", accounts["bob"])
    page.get_by_text("Nobody works this case yet.").wait_for(timeout=60_000)
    grid = page.locator('[data-testid="stDataFrame"]').last
    grid.wait_for(timeout=30_000)
    cells = grid.locator('[role="gridcell"]')
    cells.first.wait_for(state="attached", timeout=30_000)
    headers = grid.locator('[role="columnheader"]').all_text_contents()
    assert "Date and time" in " ".join(headers), headers
    days = set(re.findall(r"(\d{4}-\d{2}-\d{2}) \d{2}:\d{2}", " ".join(cells.all_text_contents())))
    assert len(days) > 1, days
