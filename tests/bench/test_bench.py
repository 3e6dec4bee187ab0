"""`fraud-dev bench --quick`: the harness runs end to end and its figures hang together.

Speed is never asserted here (that is what `make bench` reports); only that every figure is
measured, positive, and consistent with the others. The quick run (`bench` marker) is the first
step of `make bench`, not of `make test`; the harness's unit tests below are in `make test`.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from fraud_devstack.bench import queue, shadow
from fraud_devstack.bench.run import GOALS, lookup, table


@pytest.mark.slow
@pytest.mark.bench
def test_quick_bench_writes_every_figure_and_the_chart(database_url, tmp_path):
    out, chart = tmp_path / "results.json", tmp_path / "bench.png"
    command = [sys.executable, "-m", "fraud_devstack.cli", "bench", "--quick", "--no-live"]
    command += ["--out", str(out), "--chart", str(chart)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    results = json.loads(out.read_text())
    figures = results["figures"]
    measured = ["pipeline_rows_per_s", "naive_rows_per_s"]
    measured += ["copy_rows_per_s", "scoring_npy_rows_per_s", "backfill_s", "peak_rss_mb"]
    for name in measured:
        assert figures[name] > 0, name
    assert figures["speedup_vs_naive"] == pytest.approx(
        figures["pipeline_rows_per_s"] / figures["naive_rows_per_s"]
    )
    assert figures["copy_ratio"] == pytest.approx(
        figures["copy_rows_per_s"] / figures["pipeline_rows_per_s"], rel=1e-6
    )
    # The back-fill stored every payment the generator served for the period, once.
    assert 3_000 < figures["backfill_payments"] < 8_000
    # The run's latency with and without a challenger: both measured, the overhead from them.
    path = figures["shadow_champion_path_s"]
    assert path["without"] > 0 and path["with"] > 0 and figures["shadow_step_s"]["median"] > 0
    assert figures["shadow_latency_overhead_pct"] == pytest.approx(
        100 * (path["with"] / path["without"] - 1)
    )
    assert figures["shadow_payments"] > 0  # every payment of the runs shadow-scored
    assert figures["bench_wall_s"] >= results["seconds"] > 0  # the run's own wall time, a figure
    # ... and where it went: every step timed, together no more than the run.
    steps = figures["bench_step_s"]
    assert {"throughput", "backfill", "queue"} <= set(steps) and min(steps.values()) > 0
    assert sum(steps.values()) <= results["seconds"]
    assert not any(name.startswith("capacity_live") for name in figures)  # bench-capacity's
    # The review queue's page (issue 30): its reads timed on the open alerts it stored.
    assert figures["queue_open_alerts"] == 2_000 and figures["queue_cases"] > 0
    assert 0 < figures["queue_page_s"]["p50"] <= figures["queue_page_s"]["p95"]
    assert figures["queue_reads_s"]["one_case"]["p95"] > 0
    assert results["machine"]["cores"] >= 1 and results["commit"]
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "pipeline_rows_per_s" in result.stdout and "met" in result.stdout
    run = figures["shadow_run_s"]  # load, then the later of alert and shadow_score
    assert run["with"] >= figures["shadow_champion_path_s"]["with"] > 0
    assert figures["shadow_extra_s"] == pytest.approx(run["with"] - run["without"])
    assert figures["shadow_work_overhead_pct"] == pytest.approx(
        100 * (run["with"] / run["without"] - 1)
    )
    assert "shadow_run_overhead_pct" not in figures  # against the live DAG run: not run here
    # 50 enabled rules beside the model: both sides measured, the rules did flag payments.
    rules = figures["rules_run_s"]
    assert figures["rules_count"] == 50 and figures["rules_hits"] > 0
    assert figures["rules_overhead_pct"] == pytest.approx(
        100 * (rules["with"] / rules["without"] - 1)
    )


def test_a_challengers_extra_is_weighed_against_the_live_dag_run():
    measured = {"shadow_extra_s": 0.3, "dag_run_s": {"median": 7.5, "p95": 12.0}}
    assert shadow.run_overhead_pct(measured) == pytest.approx(4.0)
    assert shadow.run_overhead_pct({"shadow_extra_s": 0.3}) is None


def test_table_says_which_goals_are_met():
    figures = {"pipeline_rows_per_s": 40_000.0, "dag_run_s": {"p95": 25.0}}
    lines = table(figures)
    assert any(line.startswith("pipeline_rows_per_s") and line.endswith("yes") for line in lines)
    assert any(line.startswith("dag_run_s.p95") and line.endswith("NO") for line in lines)
    assert lookup(figures, "alert_latency_s.p95") is None
    unmet = table({"capacity_live_payments_per_min": None})  # measured: no volume kept up with
    assert any(
        line.startswith("capacity_live_payments_per_min") and line.endswith("NO") for line in unmet
    )
    assert {name for name, _, _ in GOALS} >= {"pipeline_rows_per_s", "dag_run_s.p95"}


def test_the_queue_bench_stores_open_alerts_and_times_every_read(database_url):
    figures = queue.run(400, repeat=1)
    assert figures["queue_open_alerts"] == 400 and figures["queue_cases"] > 0
    assert set(figures["queue_reads_s"]) == {
        "first_page",
        "page_10",
        "search_last4",
        "live_today",
        "one_case",
    }
    assert lookup(figures, "queue_page_s.p95") == max(
        t["p95"] for name, t in figures["queue_reads_s"].items() if name != "one_case"
    )
    assert "queue_page_s.p95" in {name for name, _, _ in GOALS}
