"""The payments API server and the extract client, over real HTTP, in both modes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from io import StringIO

import pandas as pd
import pytest
import requests

from fraud_devstack.stack import payments_api
from fraud_pipeline import clock
from fraud_pipeline.config import Settings, get_settings
from fraud_pipeline.ingest.extract import ExtractError, fetch_current, fetch_window
from fraud_pipeline.ingest.payments import localize, read_sparkov_csv
from fraud_pipeline.pipeline.steps import extract, validate
from fraud_pipeline.storage.db import connect
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, NEEDS_CHROMIUM
from tests.support.factories import KAGGLE_HEAD
from tests.support.servers import serve_app

SPEED = 50.0  # 5,116 real rows over ~31 h, replayed in ~37 min: ~140 payments a minute


@pytest.fixture(scope="module")
def anchor() -> pd.Timestamp:
    """The replay started 30 minutes ago, so the last minutes are in the past."""
    return pd.Timestamp(clock.now()).floor("min") - pd.Timedelta(minutes=30)


@pytest.fixture(scope="module")
def replay(anchor: pd.Timestamp) -> payments_api.Source:
    return payments_api.replay_source(KAGGLE_HEAD, anchor, speed=SPEED)


@pytest.fixture(scope="module")
def api_url(replay: payments_api.Source) -> Iterator[str]:
    server = serve_app(payments_api.build_app(replay))
    try:
        yield server.url
    finally:
        server.stop()


def _get(url: str, **params: object) -> requests.Response:
    return requests.get(url, params=params, timeout=30)


def _settings(api_url: str, **changes: object) -> Settings:
    return get_settings().model_copy(update={"payments_api_url": api_url, **changes})


def test_replay_keeps_the_csv_order_and_spacing(replay, anchor):
    csv = read_sparkov_csv(KAGGLE_HEAD)
    served = replay(anchor, anchor + pd.Timedelta(minutes=5))
    assert len(served) > 100
    assert list(served["trans_num"]) == list(csv["trans_num"].head(len(served)))
    original = localize(csv["trans_date_trans_time"].head(len(served))).diff().dt.total_seconds()
    shifted = served["unix_time"].diff()
    assert (shifted.iloc[1:] - original.iloc[1:] / SPEED).abs().max() <= 1.0  # 1 s: whole seconds


def test_pages_of_a_window_are_the_window_exactly_and_a_rerun_gets_the_same(
    api_url, replay, anchor
):
    start, end = anchor + pd.Timedelta(minutes=2), anchor + pd.Timedelta(minutes=4)
    pages, token = [], None
    while True:
        params = {"start": start.isoformat(), "end": end.isoformat(), "limit": 37}
        response = _get(
            f"{api_url}/transactions", **params | ({"page_token": token} if token else {})
        ).json()
        pages.append([p["trans_num"] for p in response["payments"]])
        token = response["next_page_token"]
        if not token:
            break
    fetched = [t for page in pages for t in page]
    assert len(pages) > 3 and fetched == list(replay(start, end)["trans_num"])
    again = fetch_window(start.to_pydatetime(), end.to_pydatetime(), _settings(api_url))
    assert list(again["trans_num"]) == fetched


def test_a_response_over_the_size_limit_fails_the_extract_and_says_so(api_url, anchor):
    start, end = anchor + pd.Timedelta(minutes=2), anchor + pd.Timedelta(minutes=4)
    small = _settings(api_url, payments_api_max_response_bytes=4_096)
    with pytest.raises(ExtractError, match="sent more than 4,096 bytes"):
        fetch_window(start.to_pydatetime(), end.to_pydatetime(), small)


def test_the_future_is_never_served_and_a_behind_api_fails_the_extract(api_url):
    now = pd.Timestamp(clock.now())
    params = {"start": (now - pd.Timedelta(minutes=2)).isoformat()}
    params["end"] = (now + pd.Timedelta(hours=1)).isoformat()
    page = _get(f"{api_url}/transactions", **params, limit=50_000).json()
    assert page["payments"] and pd.Timestamp(page["end"]) <= pd.Timestamp(clock.now())
    assert max(p["unix_time"] for p in page["payments"]) <= pd.Timestamp(clock.now()).timestamp()
    # A run whose interval ends after the API's now must not silently take less.
    with pytest.raises(ExtractError, match="served up to"):
        fetch_window(
            now - pd.Timedelta(minutes=1), now + pd.Timedelta(minutes=1), _settings(api_url)
        )


def test_bad_requests_get_a_400_that_says_why(api_url):
    response = _get(f"{api_url}/transactions", start="yesterday")
    assert response.status_code == 400 and "start and end" in response.json()["error"]
    now = pd.Timestamp(clock.now())
    window = {"start": (now - pd.Timedelta(minutes=1)).isoformat(), "end": now.isoformat()}
    for bad in ({"limit": 0}, {"limit": "many"}, {"page_token": "x"}):
        response = _get(f"{api_url}/transactions", **window, **bad)
        assert response.status_code == 400 and "limit" in response.json()["error"], bad
    response = _get(f"{api_url}/no-such-route")
    assert response.status_code == 404 and response.json() == {"error": "no route /no-such-route"}


def test_current_transactions_speaks_the_public_format(api_url):
    body = _get(f"{api_url}/current-transactions").json()
    assert isinstance(body, str)  # a JSON string holding a split-orient frame
    frame = pd.read_json(StringIO(body), orient="split", convert_dates=False)
    assert "current_time" in frame.columns and "cc_num" in frame.columns
    assert not {"trans_date_trans_time", "unix_time"} & set(frame.columns)
    assert abs(frame["current_time"].iloc[-1] / 1000 - clock.now().timestamp()) < 60
    assert set(json.loads(body)) == {"columns", "index", "data"}


def test_current_mode_extract_lands_and_validates_the_latest_payment(clean_db, api_url):
    settings = _settings(api_url, payments_api_mode="current")
    latest = fetch_current(settings)
    assert len(latest) == 1 and latest["trans_time"].dt.tz is not None
    conn = connect()
    try:
        now = pd.Timestamp(clock.now()).to_pydatetime()
        landed = extract(conn, "current-1", now, now, settings)
        assert landed.landed == 1
        assert validate(conn, "current-1").new == 1
        with conn.cursor() as cur:
            cur.execute("SELECT trans_num, card_token FROM payments_inbox")
            (trans_num, token), *_ = cur.fetchall()
        # The stream moves on between two polls: the one landed is a real replayed payment.
        assert trans_num in set(read_sparkov_csv(KAGGLE_HEAD)["trans_num"]) and len(token) == 64
    finally:
        conn.close()


def test_the_openapi_description_names_both_endpoints_and_their_parameters(api_url):
    spec = _get(f"{api_url}/openapi.json").json()
    window = spec["paths"]["/transactions"]["get"]
    assert {p["name"]: p["required"] for p in window["parameters"]} == {
        "start": True,
        "end": True,
        "limit": False,
        "page_token": False,
    }
    page = spec["components"]["schemas"]["Page"]["properties"]
    assert {"payments", "next_page_token", "total", "end"} <= set(page)
    current = spec["paths"]["/current-transactions"]["get"]["responses"]["200"]
    assert current["content"]["application/json"]["schema"]["type"] == "string"


@pytest.mark.browser
@pytest.mark.slow
@NEEDS_CHROMIUM
def test_chromium_opens_the_openapi_page_and_tries_an_endpoint(api_url, tmp_path):
    """/docs is Swagger UI served by the API itself (no CDN): it lists both endpoints, and
    "Try it out" on /current-transactions gets the latest payment from the live API."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1800})
            failed: list[str] = []
            page.on("requestfailed", lambda request: failed.append(request.url))
            page.goto(f"{api_url}/docs", wait_until="networkidle")
            assert "Payments API" in page.title()
            paths = page.locator(".opblock-summary-path")
            paths.first.wait_for(timeout=30_000)
            listed = {p.get_attribute("data-path") for p in paths.all()}
            assert {"/transactions", "/current-transactions"} <= listed
            current = page.locator(
                "#operations-default-current_transactions_current_transactions_get"
            )
            current.locator(".opblock-summary").click()
            current.get_by_role("button", name="Try it out").click()
            current.get_by_role("button", name="Execute").click()
            status = current.locator(".live-responses-table tbody .response-col_status").first
            status.wait_for(timeout=30_000)
            assert status.inner_text().strip() == "200"
            assert "current_time" in current.locator(".live-responses-table").inner_text()
            page.screenshot(path=tmp_path / "openapi.png", full_page=True)
            assert failed == []  # every script and style came from the API itself
        finally:
            browser.close()


def test_late_payments_are_served_once_their_delay_has_passed():
    """The simulator's lateness (PAYMENTS_LATE_SHARE, PAYMENTS_LATE_DELAY_MAX_S): the share
    late is about as asked, the same payments late by the same delays for a seed, and a late
    payment is served for its window only once now >= its time + its delay."""
    source = payments_api.generator_source(seed=11, rate_per_min=40)
    lateness = payments_api.Lateness(share=0.1, max_s=600, seed=11)
    end = pd.Timestamp("2026-03-03 02:00", tz="Europe/Paris")
    start = end - pd.Timedelta(minutes=30)
    rows = source(start, end)
    delays = lateness.delays(rows["trans_num"])
    assert 0.05 < (delays > 0).mean() < 0.15 and delays.max() <= 600
    assert (payments_api.Lateness(0.1, 600, seed=11).delays(rows["trans_num"]) == delays).all()
    assert (payments_api.Lateness(0.1, 600, seed=12).delays(rows["trans_num"]) != delays).any()
    server = serve_app(payments_api.build_app(source, lateness))
    try:
        window = {"start": start.isoformat(), "end": end.isoformat(), "limit": 50}

        def served(at: pd.Timestamp) -> set[str]:
            with clock.frozen(at):  # every page cut at the first page's instant
                pages, token = [], None
                while True:
                    params = {**window, **({"page_token": token} if token else {})}
                    page = _get(f"{server.url}/transactions", **params).json()
                    pages += page["payments"]
                    token = page["next_page_token"]
                    if not token:
                        return {p["trans_num"] for p in pages}

        times = localize(rows["trans_date_trans_time"])
        arrival = times + pd.to_timedelta(delays, unit="s")
        for at in (end, end + pd.Timedelta(minutes=5), end + pd.Timedelta(minutes=10)):
            assert served(at) == set(rows.loc[(arrival <= at).to_numpy(), "trans_num"])
        assert served(end) < served(end + pd.Timedelta(minutes=10)) == set(rows["trans_num"])
    finally:
        server.stop()
