"""The bench's bookkeeping (no speed asserted): the goals table of issue 28, the figures a
`make bench` keeps from `make bench-capacity`, and the capacity step's decisions from per-minute
records, plus the stepped replay the capacity step serves."""

from __future__ import annotations

import json
import time

import pandas as pd
import pytest

from fraud_devstack.bench import capacity
from fraud_devstack.bench.capacity import Minute
from fraud_devstack.bench.run import GOALS, kept, table, wall_seconds
from fraud_devstack.stack.payments_api import stepped_replay_source
from fraud_pipeline.ingest.payments import read_sparkov_csv
from tests.support.factories import KAGGLE_HEAD

ANCHOR = pd.Timestamp("2026-03-03T11:00:00Z")


def _verdict(lines: list[str], name: str) -> str:
    (line,) = [line for line in lines if line.split()[0] == name]
    return line.split()[-1]


def test_the_goals_are_issue_28s_table():
    goals = {name: (goal, higher) for name, goal, higher in GOALS}
    assert goals["pipeline_rows_per_s"] == (30_000, True)
    assert goals["copy_ratio"] == (3, False)
    assert goals["dag_run_s.p95"] == (5, False)
    assert goals["alert_latency_s.p95"] == (65, False)
    assert goals["backfill_s"] == (60, False)
    assert goals["capacity_live_payments_per_min"] == (60_000, True)
    assert goals["bench_wall_s"] == (600, False)
    kept_from_before = {"speedup_vs_naive", "scoring_npy_seconds", "peak_rss_mb"}
    kept_from_before |= {"shadow_run_overhead_pct", "rules_overhead_pct", "queue_page_s.p95"}
    assert kept_from_before <= set(goals)
    assert "capacity_payments_per_min" not in goals  # the in-process estimate is no goal


def test_the_table_judges_each_figure_against_its_goal_at_the_boundary():
    lines = table(
        {
            "pipeline_rows_per_s": 30_000.0,
            "copy_ratio": 3.2,
            "dag_run_s": {"p95": 4.9},
            "alert_latency_s": {"p95": 65.5},
            "backfill_s": 59.0,
            "bench_wall_s": 612.0,
            "capacity_live_payments_per_min": 61_000,
        }
    )
    assert _verdict(lines, "pipeline_rows_per_s") == "yes"
    assert _verdict(lines, "copy_ratio") == "NO"
    assert _verdict(lines, "dag_run_s.p95") == "yes"
    assert _verdict(lines, "alert_latency_s.p95") == "NO"
    assert _verdict(lines, "backfill_s") == "yes"
    assert _verdict(lines, "bench_wall_s") == "NO"
    assert _verdict(lines, "capacity_live_payments_per_min") == "yes"


def test_the_table_says_how_to_measure_the_live_capacity_and_when_none_was_sustained():
    never = table({"pipeline_rows_per_s": 1.0})
    assert _verdict(never, "capacity_live_payments_per_min") == "bench-capacity)"
    assert not any(line.startswith("backfill_s") for line in never)  # not measured: no row
    none = table({"capacity_live_payments_per_min": None})
    assert _verdict(none, "capacity_live_payments_per_min") == "NO"


def test_a_bench_run_keeps_the_capacity_figures_and_counts_make_bench_from_its_start(
    tmp_path, monkeypatch
):
    out = tmp_path / "results.json"
    assert kept(out) == {}
    figures = {"pipeline_rows_per_s": 1.0, "capacity_live_payments_per_min": 40_000}
    figures["capacity_live"] = {"rates": [20_000.0]}
    out.write_text(json.dumps({"figures": figures}))
    assert kept(out) == {
        "capacity_live_payments_per_min": 40_000,
        "capacity_live": {"rates": [20_000.0]},
    }
    monkeypatch.setenv("FRAUD_BENCH_STARTED", str(time.time() - 300))
    assert wall_seconds(time.monotonic()) >= 300  # the quick harness run before it counts
    monkeypatch.delenv("FRAUD_BENCH_STARTED")
    assert wall_seconds(time.monotonic() - 7) >= 7


def _minutes(rate: float, lags: list[float | None], payments: int = 100) -> list[Minute]:
    return [
        Minute(
            rate,
            ANCHOR + pd.Timedelta(minutes=i),
            "success" if lag else "running",
            lag,
            payments + i,
        )
        for i, lag in enumerate(lags)
    ]


def test_a_minute_is_within_only_if_its_run_succeeded_within_the_next_minute():
    assert Minute(1.0, ANCHOR, "success", 60.0, 5).within
    assert not Minute(1.0, ANCHOR, "success", 60.5, 5).within
    assert not Minute(1.0, ANCHOR, "failed", None, 5).within
    assert not Minute(1.0, ANCHOR, None, None, 0).within


def test_the_sustained_rate_is_the_highest_with_every_minute_within_and_none_below_missed():
    judged = _minutes(20_000, [20, 25, 30]) + _minutes(40_000, [40, 70, 45])
    judged += _minutes(60_000, [50, 52, 55])  # all within, but above a missed rate
    rates = [20_000.0, 40_000.0, 60_000.0]
    assert capacity.sustained(judged, 20_000, minutes=3)
    assert not capacity.sustained(judged, 40_000, minutes=3)
    assert capacity.largest_sustained(judged, rates, minutes=3) == 20_000
    # Too few minutes judged (the bench stopped, or the stack did): not sustained.
    assert not capacity.sustained(judged, 20_000, minutes=4)
    assert capacity.largest_sustained(judged, rates, minutes=4) is None
    ok = _minutes(20_000, [20, 25, 30]) + _minutes(40_000, [40, 41, 45])
    assert capacity.largest_sustained(ok, rates, minutes=3) == 40_000


def test_the_figures_give_the_payments_stored_per_minute_at_the_sustained_rate():
    judged = _minutes(20_000, [20, 25, 30], payments=19_000)
    judged += _minutes(40_000, [40, None], payments=39_000)
    result = capacity.figures(judged, [20_000.0, 40_000.0, 60_000.0], minutes=3)
    assert result["capacity_live_payments_per_min"] == 19_001  # the median of 19,000..19,002
    first, second = result["capacity_live"]["per_rate"]
    assert (first["sustained"], first["minutes_within"], first["lag_s_max"]) == (True, 3, 30)
    assert (second["sustained"], second["minutes_judged"], second["minutes_within"]) == (
        False,
        2,
        1,
    )
    assert len(result["capacity_live"]["per_rate"]) == 2  # 60,000 never tried
    assert capacity.figures([], [20_000.0], 3)["capacity_live_payments_per_min"] is None


def test_capacity_figures_merge_into_the_results_and_keep_the_rest(tmp_path):
    out = tmp_path / "results.json"
    out.write_text(json.dumps({"commit": "abc", "figures": {"backfill_s": 61.0}}))
    new = capacity.figures(_minutes(20_000, [20, 21]), [20_000.0], minutes=2)
    capacity.merge(out, new, {"seconds": 300.0})
    results = json.loads(out.read_text())
    assert results["commit"] == "abc" and results["figures"]["backfill_s"] == 61.0
    assert results["figures"]["capacity_live_payments_per_min"] == 100  # median of 100, 101
    assert results["figures"]["capacity_live"]["seconds"] == 300.0


def test_the_schedule_gives_each_rate_its_minutes_in_turn():
    minutes = capacity.schedule(ANCHOR, [10.0, 20.0], minutes=2)
    assert [rate for rate, _ in minutes] == [10.0, 10.0, 20.0, 20.0]
    assert [start - ANCHOR for _, start in minutes] == [pd.Timedelta(minutes=m) for m in range(4)]


def test_the_stepped_replay_serves_each_rate_from_its_minute_and_new_payments_per_step():
    rows = len(read_sparkov_csv(KAGGLE_HEAD))
    # One loop of the file in a step of two minutes, then two loops: the rates per minute.
    source = stepped_replay_source(KAGGLE_HEAD, ANCHOR, [rows / 2, rows], step_minutes=2)
    minute = pd.Timedelta(minutes=1)
    assert source(ANCHOR - 5 * minute, ANCHOR).empty  # nothing before the first rate
    first, second = (
        source(ANCHOR, ANCHOR + 2 * minute),
        source(ANCHOR + 2 * minute, ANCHOR + 4 * minute),
    )
    assert abs(len(first) - rows) <= 2 and abs(len(second) - 2 * rows) <= 4
    assert first["trans_num"].is_unique and second["trans_num"].is_unique
    assert not set(first["trans_num"]) & set(second["trans_num"])  # another step: other payments
    assert source(ANCHOR + 5 * minute, ANCHOR + 6 * minute).shape[0] == pytest.approx(rows, rel=0.5)
    again = source(ANCHOR, ANCHOR + 2 * minute)  # a re-read window: the same payments
    assert list(again["trans_num"]) == list(first["trans_num"])
    assert list(again["trans_date_trans_time"]) == list(first["trans_date_trans_time"])
