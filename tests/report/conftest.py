"""A seeded report: real Sparkov rows, scored, on yesterday and the day before (business time).

The expected numbers always come from independent SQL on `payments_scored` (as the owner, with
the day's bounds computed here in Python), never from the report's own functions.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import psycopg2
import psycopg2.extensions
import pytest
import streamlit as st

from fraud_pipeline import clock
from fraud_pipeline.config import get_settings
from fraud_pipeline.storage.upsert import upsert_scored
from tests.factories import real_rows, scored_payments

PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class SeededDay:
    url: str
    day: date

    def bounds(self, day: date | None = None) -> tuple[datetime, datetime]:
        return clock.day_bounds(day or self.day)

    def one(self, query: str, day: date | None = None, **params: Any) -> Any:
        """One value of an SQL query over the day's rows (`%(lo)s <= trans_time < %(hi)s`)."""
        lo, hi = self.bounds(day)
        with psycopg2.connect(self.url) as conn, conn.cursor() as cur:
            cur.execute(query, {"lo": lo, "hi": hi, **params})
            row = cur.fetchone()
        conn.close()
        assert row is not None
        return row[0]

    def rows(self, query: str, day: date | None = None, **params: Any) -> list[tuple[Any, ...]]:
        lo, hi = self.bounds(day)
        with psycopg2.connect(self.url) as conn, conn.cursor() as cur:
            cur.execute(query, {"lo": lo, "hi": hi, **params})
            rows = cur.fetchall()
        conn.close()
        return rows


def day_of_payments(start: datetime, step_s: float, n: int = 640) -> pd.DataFrame:
    """`n` real scored payments from `start`, every `step_s` s, with all 18 real frauds."""
    pool = scored_payments(len(real_rows()), start=start)
    frauds = pool[pool["is_fraud"] == 1]
    frame = pd.concat([pool[pool["is_fraud"] == 0].head(n - len(frauds)), frauds])
    frame = frame.sample(frac=1.0, random_state=3).reset_index(drop=True)
    frame["trans_time"] = pd.Timestamp(start) + pd.to_timedelta(np.arange(n) * step_s, unit="s")
    return frame


@pytest.fixture
def seeded(conn: psycopg2.extensions.connection, clean_db: str) -> SeededDay:
    """640 real payments over yesterday, 400 the day before, a few the day after."""
    day = clock.yesterday()
    midnight, next_midnight = clock.day_bounds(day)
    step = clock.elapsed(midnight, next_midnight).total_seconds() * 0.99 / 640  # 23-25 h
    upsert_scored(conn, day_of_payments(midnight + timedelta(seconds=30), step))
    before = clock.day_start(day - timedelta(days=1))
    upsert_scored(conn, scored_payments(400, start=before + timedelta(hours=1), seed=1, step_s=180))
    after = next_midnight + timedelta(minutes=5)
    upsert_scored(conn, scored_payments(20, start=after, seed=2, step_s=60))
    return SeededDay(clean_db, day)


@pytest.fixture
def report_env(monkeypatch: pytest.MonkeyPatch, database_url: str) -> Iterator[None]:
    """The app's settings for a test: a known password, fresh Streamlit caches."""
    monkeypatch.setenv("DASHBOARD_USER", "analyst")
    monkeypatch.setenv("DASHBOARD_PASSWORD", PASSWORD)
    monkeypatch.delenv("REPORT_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    get_settings.cache_clear()
    st.cache_data.clear()
    st.cache_resource.clear()
