"""A run's latency with and without a challenger (issue 17: within 10%).

The same minutes of generated payments run in two scratch databases of their own (so the same
payments meet the same card history): one without a challenger, one with a challenger registered
(a copy of the committed model under another version), minute by minute in alternating order so
that neither side gets the warmer machine. Each minute runs as the DAG runs it
(`minutes.run_minute`: alert and shadow_score side by side after load). Each shadow_score is a
fresh process, as each Airflow task is: the challenger's fetch, checksums and load are counted
every run.

- `shadow_extra_s`: what a challenger adds to a run: the median whole run (load, then the later
  of alert and shadow_score) with a challenger minus without;
- `shadow_run_overhead_pct` (in `run.py`, once the live figure is known): that against the live
  DAG run's median (`live.py`): the goal's figure (issue 17: within 10%). Airflow's own cost
  per run (scheduling, starting each task's process) is the same with a challenger or without:
  the shadow_score task runs either way, a no-op without one;
- `shadow_work_overhead_pct`: the same extra against the in-process run alone (without
  Airflow's cost): the bound for an executor that costs nothing per task;
- `shadow_latency_overhead_pct`: the champion's path (extract -> alert sent), with against
  without (the alerts' latency);
- `shadow_sequential_overhead_pct`: the in-process run if the shadow step ran after alert
  instead of beside it (a one-process executor);
- `shadow_step_s`: the shadow step with a challenger (median).
"""

from __future__ import annotations

import statistics
import tempfile
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg2

from fraud_devstack.bench.backfill import payments_api
from fraud_devstack.bench.minutes import START, run_minute, services
from fraud_devstack.bench.storage import scratch_database
from fraud_pipeline.config import Settings
from fraud_pipeline.model.artifacts import load_model
from fraud_pipeline.registry import versions
from fraud_pipeline.registry.store import LocalStore
from fraud_pipeline.serving.endpoint import EndpointClient

CHALLENGER = "bench-challenger"


@dataclass
class Side:
    """One scratch database's runs: a connection for the pipeline and alert, one for shadow."""

    url: str
    whole_s: list[float] = field(default_factory=list)
    champion_s: list[float] = field(default_factory=list)
    shadow_s: list[float] = field(default_factory=list)


def timed_runs(without: Side, with_challenger: Side, settings: Settings, runs: int) -> None:
    """`runs` minutes on both sides, alternating which goes first, after a first untimed one."""
    model = load_model(settings.artifacts_dir)
    client = EndpointClient.from_settings(settings)
    for minute in range(runs + 1):
        order = [without, with_challenger] if minute % 2 else [with_challenger, without]
        for side in order:
            timed = run_minute(side.url, START + timedelta(minutes=minute), model, client, settings)
            if minute:  # the first run warms the connections and the caches up
                side.whole_s.append(timed.whole_s)
                side.champion_s.append(timed.champion_s)
                side.shadow_s.append(timed.shadow_s)


def every_payment_shadowed(url: str) -> int:
    """How many payments the runs shadow-scored: all they stored, else the bench is wrong."""
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*), count(s.trans_num) FROM payments_scored p "
            "LEFT JOIN shadow_scores s ON s.trans_num = p.trans_num"
        )
        stored, shadowed = cur.fetchone()
    conn.close()
    if not stored or shadowed != stored:
        raise RuntimeError(f"{shadowed} of {stored} payments shadow-scored")
    return int(shadowed)


def run(runs: int = 10, rate_per_min: float = 2_000) -> dict[str, Any]:
    """The median latency of `runs` one-minute runs, without and with a challenger."""
    with (
        services(payments_api(rate_per_min)) as settings,
        scratch_database() as without_url,
        scratch_database() as with_url,
        tempfile.TemporaryDirectory() as folder,
    ):
        conn = psycopg2.connect(with_url)
        try:
            artifacts = versions.relabelled_copy(
                settings.artifacts_dir, Path(folder) / "v", CHALLENGER
            )
            versions.register(conn, LocalStore(Path(settings.model_store)), artifacts)
        finally:
            conn.close()
        without, with_challenger = Side(without_url), Side(with_url)
        timed_runs(without, with_challenger, settings, runs)
        shadowed = every_payment_shadowed(with_url)
    median = statistics.median

    def overhead(with_s: list[float], without_s: list[float]) -> float:
        return 100 * (median(with_s) / median(without_s) - 1)

    sequential = [
        a + b for a, b in zip(with_challenger.champion_s, with_challenger.shadow_s, strict=True)
    ]
    figures: dict[str, Any] = {
        "shadow_runs": runs,
        "shadow_payments": shadowed,
        "shadow_rate_per_min": rate_per_min,
        "shadow_run_s": {
            "without": median(without.whole_s),
            "with": median(with_challenger.whole_s),
        },
        "shadow_champion_path_s": {
            "without": median(without.champion_s),
            "with": median(with_challenger.champion_s),
        },
        "shadow_step_s": {
            "median": median(with_challenger.shadow_s),
            "noop": max(without.shadow_s),
        },
        "shadow_extra_s": median(with_challenger.whole_s) - median(without.whole_s),
        "shadow_work_overhead_pct": overhead(with_challenger.whole_s, without.whole_s),
        "shadow_latency_overhead_pct": overhead(with_challenger.champion_s, without.champion_s),
        "shadow_sequential_overhead_pct": overhead(sequential, without.whole_s),
    }
    print(
        f"  run {figures['shadow_run_s']['without']:.2f} s without a challenger, "
        f"{figures['shadow_run_s']['with']:.2f} s with ({figures['shadow_work_overhead_pct']:+.1f}%); "
        f"champion's path {figures['shadow_latency_overhead_pct']:+.1f}%; shadow step "
        f"{figures['shadow_step_s']['median']:.2f} s (after alert instead of beside it: "
        f"{figures['shadow_sequential_overhead_pct']:+.1f}%)",
        flush=True,
    )
    return figures


def run_overhead_pct(figures: dict[str, Any]) -> float | None:
    """What a challenger adds to a run, against the live DAG run's median (see above)."""
    if "shadow_extra_s" not in figures or "dag_run_s" not in figures:
        return None
    return float(100 * figures["shadow_extra_s"] / figures["dag_run_s"]["median"])
