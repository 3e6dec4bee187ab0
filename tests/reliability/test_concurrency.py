"""Runs that overlap: two runs of the same intervals at once, and back-fills over the same period.

Each run has its own connection (as Airflow tasks and back-fill processes do). Nothing may be
stored twice or alerted twice, and no run may fail (a deadlock PostgreSQL detects is a failure).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pandas as pd
import pytest

from fraud_pipeline.pipeline.backfill import backfill
from tests.support.runs import outcome, run_all, warm_up


def together(*calls: Callable[[], Any]) -> list[Any]:
    """Start every call at the same moment, each on its own thread; their results (or raise)."""
    barrier = threading.Barrier(len(calls))

    def started(call: Callable[[], Any]) -> Any:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        futures = [pool.submit(started, call) for call in calls]
        return [future.result(timeout=300) for future in futures]


@pytest.mark.parametrize(
    ("name", "prefixes"),
    [
        ("two runs of each interval at once", ("scheduled", "manual")),
        ("a run and its zombie (same run id)", ("scheduled", "scheduled")),
    ],
)
def test_two_runs_of_the_same_intervals_at_once(name, prefixes, stack, model, outcomes, clean_db):
    warm_up(stack)
    first, second = stack.client(), stack.client()
    errors = together(
        lambda: run_all(stack, clean_db, first, prefix=prefixes[0]),
        lambda: run_all(stack, clean_db, second, prefix=prefixes[1]),
    )
    result = outcome(name, stack, model, clean_db, "no run failed", frauds_from_db=True)
    outcomes.append(result)
    assert errors == [[], []]
    assert result.ok, (result.expected, result.got)


def test_overlapping_backfills(stack, model, outcomes, clean_db):
    warm_up(stack)
    start, end = stack.window
    middle = start + (end - start) / 3
    chunk = pd.Timedelta("5min")
    loaded = together(
        lambda: backfill(start, end - (middle - start), chunk),  # the first two thirds
        lambda: backfill(middle, end, chunk),  # the last two thirds
    )
    result = outcome(
        "overlapping back-fills", stack, model, clean_db, f"loaded {loaded}", frauds_from_db=True
    )
    outcomes.append(result)
    assert all(n > 0 for n in loaded)
    assert result.ok, (result.expected, result.got)
