"""The real thing: `streamlit run` as a subprocess, headless Chromium (Debian) signing in."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fraud_pipeline.config import REPO_ROOT
from fraud_pipeline.net import free_port, wait_for_port
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, NEEDS_CHROMIUM
from tests.support.report import PASSWORD, SeededDay

DAY_ROWS = "FROM payments_scored WHERE trans_time >= %(lo)s AND trans_time < %(hi)s"

pytestmark = [pytest.mark.browser, pytest.mark.slow, NEEDS_CHROMIUM]


@pytest.fixture
def report_server(seeded: SeededDay, tmp_path: Path) -> Iterator[str]:
    """The report, served by `streamlit run` on a free port, against the session database."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": seeded.url,
        "DASHBOARD_USER": "analyst",
        "DASHBOARD_PASSWORD": PASSWORD,
        "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
    }
    env.pop("REPORT_DATABASE_URL", None)
    log = (tmp_path / "streamlit.log").open("w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(REPO_ROOT / "fraud-dashboard" / "app.py"),
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for_port("127.0.0.1", port, timeout=60)
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def test_chromium_signs_in_and_reads_the_report(
    report_server: str, seeded: SeededDay, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    payments = seeded.one(f"SELECT count(*) {DAY_ROWS}")
    frauds = seeded.one(f"SELECT count(*) {DAY_ROWS} AND is_fraud_pred")
    at_risk = float(seeded.one(f"SELECT sum(amt) {DAY_ROWS} AND is_fraud_pred"))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 2400})
            page.goto(report_server, wait_until="domcontentloaded")
            page.get_by_role("textbox", name="User").fill("analyst")
            page.get_by_role("textbox", name="Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_selector('[data-testid="stMetricValue"]', timeout=60_000)
            assert page.title() == "Morning fraud report"
            values = [
                v.inner_text() for v in page.query_selector_all('[data-testid="stMetricValue"]')
            ]
            assert values[:3] == [f"{payments:,}", f"{frauds:,}", f"${at_risk:,.2f}"]
            assert page.get_by_text(f"{seeded.day:%A %d %B %Y}").count() == 1
            page.wait_for_selector('[data-testid="stVegaLiteChart"]', timeout=30_000)
            page.screenshot(path=tmp_path / "report.png")
        finally:
            browser.close()
    assert (tmp_path / "report.png").stat().st_size > 50_000
