"""Issue #13: runs missed during downtime are caught up from the high-water mark, oldest first.

The DAG's tasks are driven here through the same step functions (`run_interval`: ingest ->
score_and_load -> alert), with `catch_up=True` as the DAG's ingest task passes it: run N, then
no run for the downtime, then run N+k.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime, timedelta

import pandas as pd
import pytest

from fraud_devstack.stack.generate import payments_between
from fraud_pipeline import clock
from fraud_pipeline.config import get_settings
from fraud_pipeline.pipeline import steps
from fraud_pipeline.pipeline.backfill import backfill
from fraud_pipeline.storage import watermark
from fraud_pipeline.storage.db import connect
from tests.support.cards import stored_id
from tests.support.servers import night_window

MINUTE = timedelta(minutes=1)


def dag_run(conn, interval_start: datetime) -> steps.Processed:
    """One scheduled run of fraud_pipeline for [interval_start, +1 min), its tasks in order."""
    return steps.run_interval(
        conn,
        interval_start,
        interval_start + MINUTE,
        run_id=f"scheduled__{interval_start.isoformat()}",
        shadow=False,
        catch_up=True,
    )


def fetched(summary: steps.Processed) -> tuple[datetime, datetime]:
    """The window a run's ingest fetched."""
    ingested = summary.ingested
    assert ingested.start is not None and ingested.end is not None
    return datetime.fromisoformat(ingested.start), datetime.fromisoformat(ingested.end)


def stored(conn) -> set[str]:
    with conn.cursor() as cur:
        cur.execute("SELECT trans_num FROM payments_scored")
        return {row[0] for row in cur.fetchall()}


def flagged(conn) -> set[str]:
    with conn.cursor() as cur:
        cur.execute("SELECT trans_num FROM payments_scored WHERE is_fraud_pred")
        return {row[0] for row in cur.fetchall()}


def alerted(messages) -> list[str]:
    return [
        trans_num
        for message in messages
        for trans_num in re.findall(
            r"^\s*payment (\S+)\s*$", message.get_body(("plain",)).get_content(), re.M
        )
    ]


def generated(start: pd.Timestamp, end: pd.Timestamp) -> set[str]:
    rows = payments_between(start, end, seed=11, rate_per_min=40)
    return set(rows["trans_num"].map(stored_id))  # as extract stores them


@pytest.mark.clock
def test_runs_missed_during_downtime_are_caught_up_and_alerted_once(services):
    _, end = night_window()
    first = (end - pd.Timedelta(hours=1)).to_pydatetime()  # run N
    down = 30  # runs N+1 .. N+30 never happen (stack, API or scheduler down)
    conn = connect()
    try:
        dag_run(conn, first)
        assert stored(conn) == generated(pd.Timestamp(first), pd.Timestamp(first + MINUTE))
        back = first + (down + 1) * MINUTE  # run N+31, the first after the downtime
        summary = dag_run(conn, back)
        assert fetched(summary) == (first + MINUTE, back + MINUTE)  # from the mark
        everything = generated(pd.Timestamp(first), pd.Timestamp(back + MINUTE))
        gap = everything - generated(pd.Timestamp(first), pd.Timestamp(first + MINUTE))
        assert len(gap) > down  # the downtime had payments (fewer on some nights than others)
        assert stored(conn) == everything  # no gap: every payment of the downtime is stored
        with conn.cursor() as cur:
            assert watermark.read(cur) == back + MINUTE
            assert watermark.lag(cur, back + MINUTE) == timedelta(0)
        frauds = flagged(conn)
        names = alerted(services.mail.messages())
        assert frauds and len(names) == len(set(names)) and set(names) == frauds  # once each
        # A missed run retried late, or the same run again: nothing stored, nothing sent.
        emails = len(services.mail.messages())
        for late in (first + 5 * MINUTE, back):
            again = dag_run(conn, late)
            assert fetched(again) == (late, late + MINUTE)  # its own interval only
            assert again.loaded.loaded == 0 and again.alerts["emails"] == 0
        assert len(services.mail.messages()) == emails and stored(conn) == everything
        with conn.cursor() as cur:
            assert watermark.read(cur) == back + MINUTE  # never moved backwards
    finally:
        conn.close()


@pytest.mark.clock
def test_a_long_downtime_is_caught_up_in_capped_spans_oldest_first(services, monkeypatch):
    monkeypatch.setenv("DAG_CATCHUP_MAX_SPAN_MIN", "10")
    get_settings.cache_clear()
    _, end = night_window()
    first = (end - pd.Timedelta(hours=1)).to_pydatetime()
    conn = connect()
    try:
        dag_run(conn, first)
        windows = []
        for minute in range(26, 30):  # 25 runs missed, then the scheduler is back
            windows.append(fetched(dag_run(conn, first + minute * MINUTE)))
        expected = [
            (first + MINUTE, first + 11 * MINUTE),  # at most 10 minutes per run
            (first + 11 * MINUTE, first + 21 * MINUTE),
            (first + 21 * MINUTE, first + 29 * MINUTE),  # caught up: to its own end
            (first + 29 * MINUTE, first + 30 * MINUTE),  # back to one minute per run
        ]
        assert windows == expected
        assert stored(conn) == generated(pd.Timestamp(first), pd.Timestamp(first + 30 * MINUTE))
    finally:
        conn.close()


def test_the_catch_up_window():
    t = datetime.fromisoformat("2026-11-29T10:00:00+00:00")
    span = timedelta(minutes=60)
    assert watermark.catch_up_window(None, t, t + MINUTE, span) == (t, t + MINUTE)  # first run
    assert watermark.catch_up_window(t, t, t + MINUTE, span) == (t, t + MINUTE)  # on time
    late = t + 5 * MINUTE  # a re-run of an older interval: its own window
    assert watermark.catch_up_window(late, t, t + MINUTE, span) == (t, t + MINUTE)
    gap = t - 3 * MINUTE
    assert watermark.catch_up_window(gap, t, t + MINUTE, span) == (gap, t + MINUTE)
    old = t - timedelta(hours=5)
    assert watermark.catch_up_window(old, t, t + MINUTE, span) == (old, old + span)


def test_the_mark_only_moves_forward_without_a_gap(conn):
    t = datetime.fromisoformat("2026-11-29T10:00:00+00:00")
    with conn, conn.cursor() as cur:
        assert watermark.read(cur) is None and watermark.lag(cur, t) is None
        watermark.advance(cur, t, t + MINUTE)
        watermark.advance(cur, t + 5 * MINUTE, t + 6 * MINUTE)  # a gap before it: not over it
        assert watermark.read(cur) == t + MINUTE
        watermark.advance(cur, t - MINUTE, t)  # an older window touching it: the range grows
        assert watermark.read(cur) == t + MINUTE  # back, never the mark
        watermark.advance(cur, t, t + 3 * MINUTE)  # overlapping and newer
        assert watermark.read(cur) == t + 3 * MINUTE
        assert watermark.lag(cur, t + 10 * MINUTE) == 7 * MINUTE
        cur.execute(  # landed, not validated yet: holds "loaded until" back
            "INSERT INTO payments_landing (run_id, trans_num, payload) VALUES "
            "('r', 'a', %s), ('r', 'b', '{\"trans_time\": \"not a time\"}')",
            (json.dumps({"trans_time": (t + MINUTE).isoformat()}),),
        )
        assert watermark.loaded_until(cur) == t + MINUTE
        assert watermark.lag(cur, t + 10 * MINUTE) == 9 * MINUTE


def test_a_day_is_complete_when_the_gap_free_range_covers_it(conn):
    """Issue #15: the morning summary of a day waits until the range landed without a gap covers
    the whole day: a first start's live run alone (yesterday still back-filling), a back-fill
    that ends before the live runs began (a gap), pending payments: not complete."""
    day = date(2026, 3, 29)  # 23 hours in Paris
    first, last = clock.day_bounds(day)
    live = last + timedelta(hours=9)  # the first live run, the next morning
    with conn, conn.cursor() as cur:
        assert watermark.day_incomplete(cur, day) == "no payments loaded yet"
        watermark.advance(cur, live, live + MINUTE)
        assert "are not loaded" in watermark.day_incomplete(cur, day)
        watermark.advance(cur, first, live - 2 * MINUTE)  # the back-fill ended before: a gap
        assert "are not loaded" in watermark.day_incomplete(cur, day)
        watermark.advance(cur, first, live)  # the back-fill that reaches the live runs
        assert watermark.day_incomplete(cur, day) is None
        assert watermark.read(cur) == live + MINUTE
        cur.execute(
            "INSERT INTO payments_landing (run_id, trans_num, payload) VALUES ('r', 'a', %s)",
            (json.dumps({"trans_time": (last - MINUTE).isoformat()}),),
        )
        assert "loaded until" in watermark.day_incomplete(cur, day)  # one payment still pending


@pytest.mark.clock
def test_the_first_back_fill_and_a_later_first_run_leave_no_hole_between_them(services):
    """The day's first back-fill ends at "now" S; the DAG's first run lands a minute after it.

    The first run found no mark and started the range at its own interval [T0, T0 + 1 min),
    T0 > S: the back-fill's [start, S) does not touch it, and nothing else would ever fetch
    [S, T0). The back-fill covers it too, so the next runs go on without a hole.
    """
    _, end = night_window()
    first = (end - pd.Timedelta(hours=1)).to_pydatetime()
    backfill_end = first + timedelta(seconds=17.5)  # "now" when the back-fill started
    run_start = first + 3 * MINUTE  # the first DAG run, late (a slow scheduler)
    conn = connect()
    try:
        dag_run(conn, run_start)  # lands while the back-fill runs: the range starts here
        backfill(
            pd.Timestamp(first - 10 * MINUTE), pd.Timestamp(backfill_end), pd.Timedelta(hours=1)
        )
        dag_run(conn, run_start + MINUTE)
        expected = generated(
            pd.Timestamp(first - 10 * MINUTE), pd.Timestamp(run_start + 2 * MINUTE)
        )
        hole = generated(pd.Timestamp(backfill_end), pd.Timestamp(run_start))
        assert hole  # the test means something
        assert stored(conn) == expected
        names = alerted(services.mail.messages())
        assert len(names) == len(set(names)) and set(names) == flagged(conn)
        with conn.cursor() as cur:
            assert watermark.read(cur) == run_start + 2 * MINUTE
    finally:
        conn.close()
