"""A lead writes a rule in the report (real browser: `streamlit run`, Debian Chromium),
backtests it, puts it in shadow and enables it; the next run's payments are flagged by it. An
analyst is not offered the Rules page."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg2
import pytest

from fraud_devstack.stack.generate import payments_between
from fraud_pipeline.ingest.payments import to_payments
from fraud_pipeline.ingest.validate import Validated
from fraud_pipeline.model.artifacts import load_model
from fraud_pipeline.pipeline import steps
from fraud_pipeline.pipeline.results import BatchId, RunId
from fraud_pipeline.security import audit, users
from fraud_pipeline.serving.endpoint import ScoreResult
from fraud_pipeline.storage import db
from tests.support.browser import NEEDS_CHROMIUM, sign_in, streamlit_report
from tests.support.report import SeededDay

pytestmark = [pytest.mark.browser, pytest.mark.slow, NEEDS_CHROMIUM]
RULE = 'amt > 300 and category in ["shopping_net", "misc_net", "grocery_pos"]'


@pytest.fixture
def accounts(seeded: SeededDay) -> dict[str, str]:
    with db.transaction(seeded.url) as cur:
        return {
            "lea": users.add(cur, "lea", "lead", "cli:test"),
            "alice": users.add(cur, "alice", "analyst", "cli:test"),
        }


@pytest.fixture
def report_server(seeded: SeededDay, accounts: dict[str, str], tmp_path: Path) -> Iterator[str]:
    with streamlit_report(seeded.url, tmp_path / "streamlit.log") as url:
        yield url


def nav(page: Any, title: str) -> Any:
    return page.locator('[data-testid="stSidebarNavLink"]').filter(has_text=title)


def test_a_lead_writes_a_rule_in_the_report_that_flags_the_next_run(
    report_server: str, seeded: SeededDay, accounts: dict[str, str], browser: Any
) -> None:
    analyst = browser.new_context(viewport={"width": 1440, "height": 1800}).new_page()
    sign_in(analyst, report_server, "alice", accounts["alice"])
    assert nav(analyst, "To review").count() == 1 and nav(analyst, "Rules").count() == 0
    analyst.context.close()

    page = browser.new_context(viewport={"width": 1440, "height": 2400}).new_page()
    sign_in(page, report_server, "lea", accounts["lea"])
    nav(page, "Rules").click()
    page.get_by_text("Write a rule").wait_for(timeout=60_000)
    page.get_by_role("textbox", name="Name").fill("big online")
    page.get_by_role("textbox", name="Rule").fill("amt >> 300")
    page.get_by_role("button", name="Save as draft").click()
    page.get_by_text("Not saved").wait_for(timeout=30_000)  # the parser says where and why
    page.get_by_role("textbox", name="Rule").fill(RULE)
    page.get_by_role("button", name="Save as draft").click()
    page.get_by_text("saved as draft (v1)").wait_for(timeout=30_000)
    page.get_by_role("button", name="Backtest").click()
    page.get_by_text("Backtest over 7 days").wait_for(timeout=60_000)
    page.get_by_role("button", name="Shadow").click()
    page.get_by_text("is now shadow").wait_for(timeout=30_000)
    page.get_by_role("button", name="Enable").click()
    page.get_by_text("is now enabled").wait_for(timeout=30_000)
    page.context.close()

    with psycopg2.connect(seeded.url) as conn, conn.cursor() as cur:
        cur.execute("SELECT name, version, mode, expression, updated_by FROM fraud_rules")
        assert cur.fetchall() == [("big online", 1, "enabled", RULE, "lea")]
        cur.execute("SELECT run_by, (figures ->> 'hits')::int FROM fraud_rule_backtests")
        (run_by, hits), *more = cur.fetchall()
        assert run_by == "lea" and not more
        cur.execute(
            "SELECT count(*) FROM payments_scored WHERE trans_time >= now() - interval '7 days' "
            "AND amt > 300 AND category IN ('shopping_net', 'misc_net', 'grocery_pos')"
        )
        assert cur.fetchone() == (hits,)
        assert audit.verify(cur).ok
        trail = [(e.actor, e.action) for e in reversed(audit.recent(cur, 100))]
    assert [a for a in trail if a[1].startswith("rule.")] == [
        ("lea", "rule.create"),
        ("lea", "rule.backtest"),
        ("lea", "rule.mode"),
        ("lea", "rule.mode"),
    ]

    # The next run: its matching payments are flagged by the rule, the others are not.
    model = load_model()
    start = pd.Timestamp.now(tz="UTC").floor("h") + pd.Timedelta(hours=2)
    frame = to_payments(payments_between(start, start + pd.Timedelta(minutes=30), seed=3))
    conn = psycopg2.connect(seeded.url)
    try:
        with conn, conn.cursor() as cur:
            checked = Validated(good=frame, bad=frame.iloc[:0].assign(reason=""))
            steps.admit(cur, checked, RunId("next"), fetched=len(frame), claim_as=BatchId("next"))

        class InProcess:
            def predict(self, matrix: Any) -> ScoreResult:
                return ScoreResult(model.predict(matrix), model.version)

        steps.score_and_load(conn, BatchId("next"), model, InProcess())
        with conn, conn.cursor() as cur:
            cur.execute(
                "SELECT count(*) FILTER (WHERE rule_flagged), count(*) FILTER (WHERE amt > 300 "
                "AND category IN ('shopping_net', 'misc_net', 'grocery_pos')) "
                "FROM payments_scored WHERE trans_time >= %s",
                (start.to_pydatetime(),),
            )
            flagged, matching = cur.fetchone()
    finally:
        conn.close()
    assert flagged == matching > 0
