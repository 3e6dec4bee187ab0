"""One identity per person, in a real browser (`streamlit run`, Debian Chromium): two analysts
sign in separately and each verdict carries its own analyst's name; a viewer can neither open
To review nor export; an admin adds a user and disables it, who can then no longer sign in.
Each of these leaves its audit row, and the chain verifies."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fraud_pipeline.security import audit, users
from fraud_pipeline.storage import db
from tests.support.browser import NEEDS_CHROMIUM, sign_in, sign_in_at, streamlit_report
from tests.support.report import SeededDay

pytestmark = [pytest.mark.browser, pytest.mark.slow, NEEDS_CHROMIUM]
ACCOUNTS = {"alice": "analyst", "bob": "analyst", "victor": "viewer", "ada": "admin"}


@pytest.fixture
def accounts(seeded: SeededDay) -> dict[str, str]:
    """One account per person, as `fraud-pipeline users add` makes them: name -> password."""
    with db.transaction(seeded.url) as cur:
        return {name: users.add(cur, name, role, "cli:test") for name, role in ACCOUNTS.items()}  # type: ignore[arg-type]


@pytest.fixture
def report_server(seeded: SeededDay, accounts: dict[str, str], tmp_path: Path) -> Iterator[str]:
    with streamlit_report(seeded.url, tmp_path / "streamlit.log") as url:
        yield url


def person(browser: Any, url: str, name: str, password: str) -> Any:
    """A page of a browser context of its own (its own cookies: its own session), signed in."""
    page = browser.new_context(viewport={"width": 1440, "height": 1800}).new_page()
    sign_in(page, url, name, password)
    return page


def trail(url: str) -> list[tuple[str, str, str]]:
    with db.transaction(url) as cur:
        assert audit.verify(cur).ok
        return [(e.actor, e.action, e.target) for e in reversed(audit.recent(cur, 1000))]


def test_two_analysts_sign_their_own_verdicts(
    report_server: str, seeded: SeededDay, accounts: dict[str, str], browser: Any
) -> None:
    first, second = seeded.riskiest_alerts_of_the_day_alone()
    for name, trans_num, verdict in (
        ("alice", first, "confirmed_fraud"),
        ("bob", second, "false_alarm"),
    ):
        page = person(browser, report_server, name, accounts[name])
        # The case of the alert, by its address (a link such as the alert email's).
        sign_in_at(page, f"{report_server}review?case={trans_num}", name, accounts[name])
        page.locator(f".st-key-{verdict}-{trans_num} button").click()
        page.get_by_text(f"(1 verdict, by {name})").wait_for(timeout=30_000)
        page.locator(".st-key-release-case button").click()  # a verdict claims the case
        page.get_by_text("Case released.").wait_for(timeout=30_000)
        page.context.close()
    assert seeded.rows(
        "SELECT trans_num, verdict, analyst FROM alert_reviews ORDER BY review_id"
    ) == [
        (first, "confirmed_fraud", "alice"),
        (second, "false_alarm", "bob"),
    ]
    done = trail(seeded.url)
    for name, trans_num in (("alice", first), ("bob", second)):
        assert (name, audit.SIGN_IN, name) in done
        assert (name, audit.VERDICT, trans_num) in done
        assert any(a == name and action == audit.VIEW_CARD for a, action, _ in done)


def test_a_viewer_can_neither_review_nor_export(
    report_server: str, seeded: SeededDay, accounts: dict[str, str], browser: Any
) -> None:
    page = person(browser, report_server, "victor", accounts["victor"])
    nav = page.locator('[data-testid="stSidebarNavLink"]')
    nav.first.wait_for(timeout=30_000)
    listed = " ".join(nav.all_inner_texts())  # each link is its icon's name, then its title
    assert "Morning report" in listed
    assert "To review" not in listed and "Users" not in listed
    assert page.get_by_role("button", name=re.compile("CSV")).count() == 0
    # The address typed by hand (a new session: signed in again): the report, not To review.
    sign_in(page, report_server + "review", "victor", accounts["victor"])
    assert page.get_by_text("cases match").count() == 0
    assert page.locator('[data-testid="stDownloadButton"]').count() == 0

    analyst = person(browser, report_server, "alice", accounts["alice"])  # the same page offers
    export = analyst.get_by_role("button", name="Frauds (CSV)")
    export.wait_for(timeout=60_000)
    with analyst.expect_download() as download:
        export.click()
    csv = Path(download.value.path()).read_text()
    assert csv.startswith("Time,") and len(csv.splitlines()) > 1
    day = seeded.day.isoformat()
    for _ in range(50):  # the click's callback runs after the download starts
        if ("alice", audit.EXPORT, f"frauds-{day}.csv") in trail(seeded.url):
            break
        analyst.wait_for_timeout(200)
    done = trail(seeded.url)
    assert ("alice", audit.EXPORT, f"frauds-{day}.csv") in done
    assert not any(actor == "victor" and action == audit.EXPORT for actor, action, _ in done)


def test_an_admin_adds_and_disables_a_user(
    report_server: str, seeded: SeededDay, accounts: dict[str, str], browser: Any
) -> None:
    page = person(browser, report_server, "ada", accounts["ada"])
    page.locator('[data-testid="stSidebarNavLink"]').filter(has_text="Users").click()
    page.get_by_role("textbox", name="New user").fill("carol")
    page.get_by_role("button", name="Add user").click()
    added = page.get_by_text(re.compile(r"User carol added \(viewer\); one-time password: \S+"))
    added.wait_for(timeout=30_000)
    password = added.inner_text().rsplit(" ", 1)[-1]
    carol = person(browser, report_server, "carol", password)  # it works
    carol.context.close()

    page.locator(".st-key-disable-carol button").click()
    page.get_by_text("User carol disabled.").wait_for(timeout=30_000)
    page.locator('[data-testid="stSidebarNavLink"]').filter(has_text="Audit").click()
    page.get_by_text(re.compile("Chain intact over")).wait_for(timeout=30_000)

    again = browser.new_context().new_page()
    again.goto(report_server, wait_until="domcontentloaded")
    again.get_by_role("textbox", name="User").fill("carol")
    again.get_by_role("textbox", name="Password").fill(password)
    again.get_by_role("button", name="Sign in").click()
    again.get_by_text("Wrong user or password.").wait_for(timeout=30_000)
    done = trail(seeded.url)
    assert ("ada", audit.USER_ADD, "carol") in done
    assert ("ada", audit.USER_DISABLE, "carol") in done
    assert ("carol", audit.SIGN_IN, "carol") in done
    assert ("carol", audit.SIGN_IN_FAILED, "carol") in done
