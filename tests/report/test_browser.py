"""The real thing: `streamlit run` as a subprocess, headless Chromium (Debian) signing in.

`REPORT_SCREENSHOTS=docs pytest tests/report/test_browser.py -k triages` refreshes
docs/review.png (the To review page, 1440 px wide, on the seeded day)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    NEEDS_CHROMIUM,
    sign_in,
    streamlit_report,
)
from tests.support.report import PASSWORD, SeededDay, account

DAY_ROWS = "FROM payments_scored WHERE trans_time >= %(lo)s AND trans_time < %(hi)s"

REVIEW_WIDTH = 1440  # docs/review.png
SCREENSHOTS = "REPORT_SCREENSHOTS"  # a directory: the review screenshot is copied there

pytestmark = [pytest.mark.browser, pytest.mark.slow, NEEDS_CHROMIUM]


@pytest.fixture
def report_server(seeded: SeededDay, tmp_path: Path) -> Iterator[str]:
    """The report, served by `streamlit run` on a free port, against the session database."""
    account(seeded.url)  # the analyst signs in with their own account
    with streamlit_report(seeded.url, tmp_path / "streamlit.log") as url:
        yield url


def test_chromium_signs_in_and_reads_the_report(
    report_server: str, seeded: SeededDay, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    payments = seeded.one(f"SELECT count(*) {DAY_ROWS}")
    frauds = seeded.one(f"SELECT count(*) {DAY_ROWS} AND is_fraud_pred")
    at_risk = float(seeded.one(f"SELECT sum(amt) {DAY_ROWS} AND is_fraud_pred"))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 2400})
            sign_in(page, report_server, "analyst", PASSWORD)
            assert page.title() == "Morning fraud report"
            # The page streams in: wait for each figure rather than read a half-drawn page.
            for label, value in (
                ("Payments", f"{payments:,}"),
                ("Frauds detected", f"{frauds:,}"),
                ("Amount at risk", f"${at_risk:,.2f}"),
            ):
                expect(metric_value(page, label)).to_have_text(value, timeout=30_000)
            assert page.get_by_text(f"{seeded.day:%A %d %B %Y}").count() == 1
            page.wait_for_selector('[data-testid="stVegaLiteChart"]', timeout=30_000)
            page.screenshot(path=tmp_path / "report.png")
        finally:
            browser.close()
    assert (tmp_path / "report.png").stat().st_size > 50_000


def click_once_alone(locator: Any) -> None:
    """Click `locator` once it matches one element: while Streamlit reruns a page, the previous
    run's element can stay in the page beside the new one (a strict click would then fail)."""
    from playwright.sync_api import expect

    expect(locator).to_have_count(1, timeout=30_000)
    locator.click()


def open_case(page: Any, seeded: SeededDay, trans_num: str) -> None:
    """Find an alert by its transaction id in the queue (reviewed or not) and open its case."""
    [(key,)] = seeded.rows("SELECT DISTINCT case_key FROM fraud_review_case(%(t)s)", t=trans_num)
    click_once_alone(page.locator(".st-key-q_status"))
    click_once_alone(page.get_by_role("option", name="All", exact=True))
    page.locator(".st-key-q_search input").fill(trans_num)
    page.locator(".st-key-q_search input").press("Enter")
    click_once_alone(page.locator(f".st-key-open-{key} button"))
    page.locator(f".st-key-note-{trans_num}").wait_for(timeout=30_000)


def metric_value(page: Any, label: str) -> Any:
    """The value of the metric labelled exactly `label` (a Playwright locator)."""
    card = page.locator('[data-testid="stMetric"]').filter(has=page.get_by_text(label, exact=True))
    return card.locator('[data-testid="stMetricValue"]')


def test_chromium_triages_two_alerts_and_the_report_measures_them(
    report_server: str, seeded: SeededDay, tmp_path: Path
) -> None:
    """Sign in, mark the riskiest alert confirmed and the next a false alarm, read the report.

    Only the report day's alerts are left flagged, so both verdicts land on the day shown.
    """
    from playwright.sync_api import expect, sync_playwright

    first, second = seeded.riskiest_alerts_of_the_day_alone()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": REVIEW_WIDTH, "height": 1800})
            sign_in(page, report_server, "analyst", PASSWORD)
            expect(metric_value(page, "Confirmed precision")).to_have_text("—", timeout=30_000)

            nav = page.locator('[data-testid="stSidebarNavLink"]')
            nav.filter(has_text="To review").click()
            page.get_by_text("cases match").wait_for(timeout=60_000)
            page.screenshot(path=tmp_path / "review.png")

            open_case(page, seeded, first)
            click_once_alone(page.locator(f".st-key-confirmed_fraud-{first} button"))
            page.get_by_text("confirmed fraud (1 verdict, by analyst)").wait_for(timeout=30_000)
            click_once_alone(
                page.locator(".st-key-release-case button")
            )  # the next case may be its own
            page.get_by_text("Case released.").wait_for(timeout=30_000)
            click_once_alone(page.get_by_role("button", name="Back to the queue"))
            open_case(page, seeded, second)
            page.locator(f".st-key-note-{second} input").fill("known customer, travelling")
            click_once_alone(page.locator(f".st-key-false_alarm-{second} button"))
            page.get_by_text("false alarm (1 verdict, by analyst)").wait_for(timeout=30_000)

            nav.filter(has_text="Morning report").click()
            expect(metric_value(page, "Confirmed precision")).to_have_text("50.0%", timeout=60_000)
            expect(metric_value(page, "Frauds confirmed")).to_have_text("1", timeout=30_000)
        finally:
            browser.close()
    assert seeded.rows(
        "SELECT trans_num, verdict, note, analyst FROM alert_reviews ORDER BY review_id"
    ) == [
        (first, "confirmed_fraud", None, "analyst"),
        (second, "false_alarm", "known customer, travelling", "analyst"),
    ]
    shot = tmp_path / "review.png"
    assert shot.stat().st_size > 50_000
    if os.environ.get(SCREENSHOTS):  # `REPORT_SCREENSHOTS=docs pytest -k triages`
        shutil.copy(shot, Path(os.environ[SCREENSHOTS]) / "review.png")
