"""Extract: fetch a run's payments from the payments API and land them, cards tokenised.

Two API modes (PAYMENTS_API_MODE): `windowed` fetches every payment whose event time lies in the
run's data interval, page by page, so a re-run fetches the same payments (within one wall-clock
budget for all pages, a page limit and a response size limit: PAYMENTS_API_FETCH_BUDGET_S,
PAYMENTS_API_MAX_PAGES, PAYMENTS_API_MAX_RESPONSE_BYTES); `current` polls the
public API's `GET /current-transactions` (a JSON string holding a pandas split frame).
The full card number is replaced here, before anything is stored: a valid one by its HMAC token
and last four digits, an invalid one by a masked form kept for the quarantine's reason.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import datetime
from typing import Any

import pandas as pd
import requests
import urllib3

from fraud_pipeline.config import Settings, get_settings
from fraud_pipeline.ingest import rows
from fraud_pipeline.ingest.cards import identifier_token, mask_card_numbers, tokenise_frame

log = logging.getLogger(__name__)

PAGE_LIMIT = 5_000
_READ_SIZE = 65_536  # read1: whatever has arrived, up to this
_GRACE_S = 1.0  # past the deadline, for a worker's own truer error (a read timeout, a status)
UNSTORABLE = "\ufffd"  # what replaces text PostgreSQL/UTF-8 cannot hold; validate quarantines it
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# JSON escapes that decode to NUL or to a (possibly lone) surrogate: the slow path is rare.
_RISKY_ESCAPE = re.compile(r"\\u(0000|[dD][89a-fA-F])")


class ExtractError(RuntimeError):
    """The payments API failed or answered something unreadable (the task retries)."""


def _get(
    settings: Settings,
    path: str,
    params: dict[str, Any] | None = None,
    *,
    deadline: float | None = None,
    budget: str = "",
) -> Any:
    """GET and decode one JSON body: at most PAYMENTS_API_MAX_RESPONSE_BYTES, read before
    `deadline` (time.monotonic()). The body is streamed and the clock checked between reads:
    a per-read timeout alone never ends a server that drips its answer. A server that drips
    its headers is stopped too: the request runs in a worker thread that the caller stops
    waiting for at the deadline (the thread ends with its connection)."""
    url = settings.payments_api_url.rstrip("/") + path
    deadline = deadline or time.monotonic() + settings.payments_api_fetch_budget_s
    budget = (
        budget
        or f"payments API fetch exceeded its {settings.payments_api_fetch_budget_s:g} s budget"
    )
    limit = settings.payments_api_max_response_bytes
    timeout = max(0.001, min(settings.payments_api_timeout_s, deadline - time.monotonic()))

    def read() -> tuple[int, str | None, bytes]:
        with requests.get(url, params=params, timeout=timeout, stream=True) as response:
            chunks, size = [], 0
            while chunk := response.raw.read1(_READ_SIZE, decode_content=True):
                size += len(chunk)
                if size > limit:
                    raise ExtractError(f"payments API {url} sent more than {limit:,} bytes")
                if time.monotonic() > deadline:
                    raise ExtractError(f"{budget} (reading {url}, {size:,} bytes so far)")
                chunks.append(chunk)
            return response.status_code, response.encoding, b"".join(chunks)

    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="payments-api")
    try:
        remaining = max(0.0, deadline - time.monotonic())
        status, encoding, body = worker.submit(read).result(timeout=remaining + _GRACE_S)
    except FutureTimeout as error:
        raise ExtractError(f"{budget} (waiting for {url}'s headers)") from error
    except (requests.RequestException, urllib3.exceptions.HTTPError) as error:
        if time.monotonic() > deadline:
            raise ExtractError(f"{budget} (reading {url}: {error})") from error
        raise ExtractError(f"payments API {url} unreachable: {error}") from error
    finally:
        worker.shutdown(wait=False)
    text = body.decode(encoding or "utf-8", errors="replace")
    if status != 200:
        raise ExtractError(f"payments API {url} answered {status}: {mask_card_numbers(text)[:200]}")
    try:
        return decode_json(text)
    except ValueError as error:
        raise ExtractError(f"payments API {url} sent a body that is not JSON: {error}") from error


def decode_json(text: str) -> Any:
    """JSON with NUL and lone surrogates in strings replaced by UNSTORABLE.

    Neither can be stored (jsonb refuses \\u0000, UTF-8 has no surrogates): left in, one hostile
    payment would make its whole interval fail on every retry. Replaced, it is quarantined.
    """
    value = json.loads(text)
    return _scrub(value) if _RISKY_ESCAPE.search(text) else value


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        if "\x00" in value or (not value.isascii() and _LONE_SURROGATE.search(value)):
            return _LONE_SURROGATE.sub(UNSTORABLE, value.replace("\x00", UNSTORABLE))
        return value
    if isinstance(value, list):
        return [_scrub(item) for item in value]
    if isinstance(value, dict):
        return {_scrub(key): _scrub(item) for key, item in value.items()}
    return value


def fetch_window(start: datetime, end: datetime, settings: Settings | None = None) -> pd.DataFrame:
    """Every payment with event time in [start, end), all pages."""
    settings = settings or get_settings()
    try:
        records = _fetch_pages(start, end, settings)
    except ExtractError as error:
        log.error("payments of [%s, %s) not fetched, nothing landed (retry): %s", start, end, error)
        raise
    log.info("fetched %d payments for [%s, %s)", len(records), start, end)
    return pd.DataFrame.from_records(rows.from_api(records))


def _fetch_pages(start: datetime, end: datetime, settings: Settings) -> list[Any]:
    records: list[Any] = []
    token: str | None = None
    deadline = time.monotonic() + settings.payments_api_fetch_budget_s
    for pages in itertools.count():
        if pages >= settings.payments_api_max_pages:
            raise ExtractError(
                f"payments API fetch exceeded its limit of {settings.payments_api_max_pages} "
                f"pages (next_page_token never ended), {len(records):,} payments so far"
            )
        budget = (
            f"payments API fetch exceeded its {settings.payments_api_fetch_budget_s:g} s budget "
            f"after {pages} pages"
        )
        if time.monotonic() > deadline:
            raise ExtractError(budget)
        params = {"start": start.isoformat(), "end": end.isoformat(), "limit": PAGE_LIMIT}
        if token:
            params["page_token"] = token
        page = _get(settings, "/transactions", params, deadline=deadline, budget=budget)
        if not isinstance(page, dict) or not isinstance(page.get("payments"), list):
            raise ExtractError(
                f"payments API page is malformed: {mask_card_numbers(str(page))[:200]}"
            )
        served = pd.Timestamp(page["end"]) if page.get("end") else None
        if served is not None and served < pd.Timestamp(end):
            # The API's clock is behind ours: fetching now would miss the interval's last
            # payments for good. Fail, and let the task's retry fetch the whole interval.
            raise ExtractError(
                f"payments API has served up to {served.isoformat()} only, not {end.isoformat()}"
            )
        records.extend(page["payments"])
        token = page.get("next_page_token")
        if not token:
            return records
    raise AssertionError("unreachable")  # itertools.count() never ends


def fetch_current(settings: Settings | None = None) -> pd.DataFrame:
    """The public API's latest payment(s); event time = its `current_time` (epoch ms)."""
    settings = settings or get_settings()
    body = _get(settings, "/current-transactions")
    try:
        split = decode_json(body) if isinstance(body, str) else body
        frame = pd.DataFrame(split["data"], columns=split["columns"])
    except (ValueError, KeyError, TypeError) as error:
        raise ExtractError(f"current-transactions is not a split-orient frame: {error}") from error
    times = pd.to_datetime(frame.pop("current_time"), unit="ms", utc=True)
    frame["trans_time"] = times.dt.tz_convert(settings.business_tz)
    return frame


def to_records(raw: pd.DataFrame, settings: Settings | None = None) -> pd.DataFrame:
    """What extract lands, per row (`ingest.rows`): unknown fields dropped (names logged), card
    numbers in text fields masked, a card-like run in an id tokenised (`cards.identifier_token`),
    cards tokenised (`cards.tokenise_frame`: invalid numbers masked, token left empty), the event time as received in `trans_time` (validate reads it
    per row, whatever its format). Nothing here fails on one row's content."""
    settings = settings or get_settings()
    unknown = [c for c in raw.columns if c not in rows.API_FIELDS and c not in rows.DERIVED_FIELDS]
    if unknown:
        rows.log_unknown(sorted(map(str, unknown)))
    frame = raw.drop(columns=unknown)
    key = settings.card_token_key.get_secret_value().encode()
    for column in rows.TEXT_FIELDS:
        if column in frame:
            if column == "trans_num":  # a keyed token of a card-like run: ids stay apart
                frame[column] = rows.texts(frame[column], lambda v: identifier_token(v, key))
            else:
                frame[column] = rows.texts(frame[column], mask_card_numbers)
    if rows.CARD_FIELD in frame:  # a card "number" that is a list, a bool...: no card
        cards = frame[rows.CARD_FIELD].map(lambda v: rows.as_text(v, str))  # its type only
        unusable = cards.map(lambda v: not (isinstance(v, str) or rows.is_missing(v)))
        if unusable.any():
            reason = cards[unusable].map(
                lambda v: f"cc_num: expected text, got {rows.type_name(v)}"
            )
            previous = frame.get(rows.REJECTED, None)
            frame[rows.REJECTED] = (
                reason if previous is None else previous.where(previous.notna(), reason)
            )
            frame[rows.CARD_FIELD] = frame[rows.CARD_FIELD].where(~unusable, None)
    frame = tokenise_frame(frame, key)
    if "trans_time" not in frame and "trans_date_trans_time" in frame:
        frame["trans_time"] = frame["trans_date_trans_time"]
    return frame.drop(columns=["trans_date_trans_time", "unix_time"], errors="ignore")
