"""One-minute runs as the DAG runs them, in this process: the shadow and capacity benchmarks.

A minute of generated payments goes through extract (from the payments API), validate,
transform, score (on the model server), load; then alert (to a local SMTP catcher) and
shadow_score side by side, as the DAG's two tasks after load (here two threads with a
connection each; the DAG's are two processes, so threads sharing one GIL are the harder case).
Airflow's own cost per run (scheduling, a process per task) is not in these figures: `live.py`
measures the real DAG runs.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg2

from fraud_pipeline.bench.scoring import model_server
from fraud_pipeline.config import Settings, get_settings
from fraud_pipeline.devstack.mailcatcher import MailCatcher
from fraud_pipeline.model.artifacts import Model
from fraud_pipeline.net import free_port
from fraud_pipeline.pipeline import shadow, steps
from fraud_pipeline.pipeline.steps import run_interval
from fraud_pipeline.registry import models
from fraud_pipeline.serving.endpoint import EndpointClient

START = datetime.fromisoformat("2026-03-03T01:00:00+00:00")  # a fixed night: frauds to alert


@dataclass(frozen=True)
class MinuteRun:
    """Seconds of one run: the whole (load, then the later of alert and shadow_score), the
    champion's path (extract -> alert sent), the shadow step; and how many payments it stored."""

    whole_s: float
    champion_s: float
    shadow_s: float
    loaded: int


def run_minute(
    url: str, start: datetime, model: Model, client: EndpointClient, settings: Settings
) -> MinuteRun:
    """The minute from `start`, as the DAG runs it, into the database at `url`."""
    with ExitStack() as stack:
        conn = psycopg2.connect(url)
        stack.callback(conn.close)
        shadow_conn = psycopg2.connect(url)
        stack.callback(shadow_conn.close)
        models.forget_models()  # each task a fresh process
        began = time.perf_counter()
        summary = run_interval(
            conn,
            start,
            start + timedelta(minutes=1),
            run_id=f"bench__{start.isoformat()}",
            model=model,
            client=client,
            settings=settings,
            send_alerts=False,
            shadow=False,
        )

        def timed(step: Any, *args: Any) -> tuple[float, Any]:
            result = step(*args)
            return time.perf_counter(), result

        loaded = time.perf_counter()
        with ThreadPoolExecutor(max_workers=2) as pool:
            alerted = pool.submit(timed, steps.alert, conn, settings)
            shadowed = pool.submit(
                timed, shadow.shadow_loaded, shadow_conn, summary["load"], settings
            )
            alert_done, _ = alerted.result()
            shadow_done, shadow_summary = shadowed.result()
    if "error" in shadow_summary:
        raise RuntimeError(f"shadow scoring failed: {shadow_summary['error']}")
    return MinuteRun(
        whole_s=max(alert_done, shadow_done) - began,
        champion_s=alert_done - began,
        shadow_s=shadow_done - loaded,
        loaded=int(summary["load"].get("loaded", 0)),
    )


@contextmanager
def services(payments: AbstractContextManager[str]) -> Iterator[Settings]:
    """The `payments` API, a model server and an SMTP catcher; the settings naming them."""
    with (
        model_server() as model_url,
        payments as api_url,
        tempfile.TemporaryDirectory(prefix="bench-minutes-") as folder,
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
