"""The first start's back-fill window, fetched from the real payments API (issue 13)."""

from __future__ import annotations

from datetime import timedelta

import requests

from fraud_devstack.stack import local_stack
from fraud_pipeline import clock


def served_ends(api_url: str, start, end, limit: int) -> list[str]:
    """The end each page of [start, end) was cut at."""
    ends, token = [], None
    while True:
        params = {"start": start.isoformat(), "end": end.isoformat(), "limit": limit}
        if token:
            params["page_token"] = token
        page = requests.get(f"{api_url}/transactions", params=params, timeout=60).json()
        ends.append(page["end"])
        token = page["next_page_token"]
        if not token:
            return ends


def test_every_page_of_the_back_fills_last_chunk_is_cut_at_its_end(services):
    """The back-fill ends at "now": a later page cut a millisecond short of an end in
    microseconds, and the extract's served-end check failed the chunk (and the back-fill)."""
    _, end = local_stack.backfill_window(1)
    ends = served_ends(services.settings.payments_api_url, end - timedelta(minutes=5), end, 37)
    assert len(ends) > 2
    assert {clock.parse_instant(e) for e in ends} == {end}
