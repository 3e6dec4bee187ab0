"""A run's latency with and without a challenger (issue 17: within 10%).

The same minutes of generated payments run twice, each time in a scratch database of its own
(so the same payments meet the same card history): without a challenger, then with one
registered (a copy of the committed model under another version). Each minute runs the DAG's
steps in order, as `run_interval` does: extract from the payments API, validate, transform,
score on the model server, load, alert (to a local SMTP catcher): the champion's path; then the
shadow step the DAG runs beside alert (a no-op without a challenger). Before each shadow step
the challenger is forgotten, as each Airflow task is a process of its own: its fetch, checksums
and load are counted every run.

- `shadow_latency_overhead_pct`: the champion's path (extract -> alert), median of the runs,
  with a challenger against without (the alerts' latency);
- `shadow_run_overhead_pct`: the whole run, shadow step included, as if run one after the other:
  the goal's figure (issue 17: within 10%), an upper bound, since in the DAG the shadow task
  runs beside alert;
- `shadow_step_s`: the shadow step with a challenger (median).
"""

from __future__ import annotations

import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg2

from fraud_pipeline.bench.backfill import payments_api
from fraud_pipeline.bench.scoring import model_server
from fraud_pipeline.bench.storage import scratch_database
from fraud_pipeline.config import Settings, get_settings
from fraud_pipeline.devstack.mailcatcher import MailCatcher
from fraud_pipeline.model.artifacts import load_model
from fraud_pipeline.model.checksums import METADATA_FILE
from fraud_pipeline.net import free_port
from fraud_pipeline.pipeline import shadow
from fraud_pipeline.pipeline.steps import run_interval
from fraud_pipeline.registry import models, versions
from fraud_pipeline.registry.store import LocalStore
from fraud_pipeline.serving.endpoint import EndpointClient

START = datetime.fromisoformat("2026-03-03T01:00:00+00:00")  # a fixed night: frauds to alert
CHALLENGER = "bench-challenger"


def challenger_copy(artifacts_dir: Path, target: Path, version: str) -> Path:
    """The committed artifacts under another version name (metadata.json only changes)."""
    shutil.copytree(artifacts_dir, target)
    metadata = json.loads((target / METADATA_FILE).read_text())
    metadata["model_version"] = version
    (target / METADATA_FILE).write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")
    return target


def timed_runs(url: str, settings: Settings, runs: int) -> tuple[list[float], list[float]]:
    """(champion's path, shadow step) seconds of each run after a first, untimed one."""
    model = load_model(settings.artifacts_dir)
    client = EndpointClient.from_settings(settings)
    champion_s, shadow_s = [], []
    conn = psycopg2.connect(url)
    try:
        for minute in range(runs + 1):
            start = START + timedelta(minutes=minute)
            models.forget_models()  # a fresh task process
            began = time.perf_counter()
            summary = run_interval(
                conn,
                start,
                start + timedelta(minutes=1),
                run_id=f"bench__{minute}",
                model=model,
                client=client,
                settings=settings,
                shadow=False,
            )
            middle = time.perf_counter()
            shadowed = shadow.shadow_loaded(conn, summary["load"], settings)
            ended = time.perf_counter()
            if "error" in shadowed:
                raise RuntimeError(f"shadow scoring failed: {shadowed['error']}")
            if minute:  # the first run warms the connections and the caches up
                champion_s.append(middle - began)
                shadow_s.append(ended - middle)
    finally:
        conn.close()
    return champion_s, shadow_s


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


@contextmanager
def services(rate_per_min: float) -> Iterator[Settings]:
    """Payments API (generator), model server and SMTP catcher; the settings naming them."""
    with (
        model_server() as model_url,
        payments_api(rate_per_min) as api_url,
        tempfile.TemporaryDirectory(prefix="bench-shadow-") as folder,
    ):
        mail = MailCatcher(Path(folder) / "mail", port=free_port()).start()
        try:
            yield get_settings().model_copy(
                update={
                    "sagemaker_endpoint_url": model_url,
                    "payments_api_url": api_url,
                    "smtp_host": "127.0.0.1",
                    "smtp_port": mail.port,
                    "model_store": str(Path(folder) / "store"),
                }
            )
        finally:
            mail.stop()


def run(runs: int = 10, rate_per_min: float = 2_000) -> dict[str, Any]:
    """The median latency of `runs` one-minute runs, without then with a challenger."""
    with services(rate_per_min) as settings:
        with scratch_database() as url:
            without, noop = timed_runs(url, settings, runs)
        with scratch_database() as url, tempfile.TemporaryDirectory() as folder:
            conn = psycopg2.connect(url)
            try:
                artifacts = challenger_copy(settings.artifacts_dir, Path(folder) / "v", CHALLENGER)
                versions.register(conn, LocalStore(Path(settings.model_store)), artifacts)
            finally:
                conn.close()
            with_champion, with_shadow = timed_runs(url, settings, runs)
            shadowed = every_payment_shadowed(url)
    base, champion = statistics.median(without), statistics.median(with_champion)
    whole_without = statistics.median(a + b for a, b in zip(without, noop, strict=True))
    whole_with = statistics.median(a + b for a, b in zip(with_champion, with_shadow, strict=True))
    figures: dict[str, Any] = {
        "shadow_runs": runs,
        "shadow_payments": shadowed,
        "shadow_rate_per_min": rate_per_min,
        "shadow_champion_path_s": {"without": base, "with": champion},
        "shadow_step_s": {"median": statistics.median(with_shadow), "noop": max(noop)},
        "shadow_latency_overhead_pct": 100 * (champion / base - 1),
        "shadow_run_overhead_pct": 100 * (whole_with / whole_without - 1),
    }
    print(
        f"  champion's path {base:.2f} s without a challenger, {champion:.2f} s with "
        f"({figures['shadow_latency_overhead_pct']:+.1f}%); shadow step "
        f"{figures['shadow_step_s']['median']:.2f} s "
        f"(whole run {figures['shadow_run_overhead_pct']:+.1f}%)",
        flush=True,
    )
    return figures
