"""One-minute runs as the DAG runs them, in this process: the shadow and capacity benchmarks.

A minute of generated payments goes through ingest (from the payments API) and
score_and_load (on the model server); then alert (to a local SMTP catcher) and shadow_score
side by side, as the DAG's two tasks after score_and_load: two processes, each with its own
connection, forked from a fork server that preloaded the scheduler's TASK_MODULES (as the
LocalExecutor forks its tasks from the scheduler; not from this process: XGBoost's OpenMP
threads do not survive a fork once they ran). Airflow's own cost per run (scheduling, starting
the task processes) is not in these figures: `live.py` measures the real DAG runs.
"""

from __future__ import annotations

import multiprocessing
import tempfile
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import psycopg2

from fraud_devstack.bench.scoring import model_server
from fraud_devstack.stack.airflow_local import TASK_MODULES
from fraud_devstack.stack.mailcatcher import MailCatcher
from fraud_pipeline.config import Settings, get_settings
from fraud_pipeline.model.artifacts import Model
from fraud_pipeline.net import free_port
from fraud_pipeline.pipeline import shadow, steps
from fraud_pipeline.pipeline.results import Loaded, RunId
from fraud_pipeline.pipeline.steps import run_interval
from fraud_pipeline.serving.endpoint import EndpointClient

START = datetime.fromisoformat("2026-03-03T01:00:00+00:00")  # a fixed night: frauds to alert


@dataclass(frozen=True)
class MinuteRun:
    """Seconds of one run: the whole (score_and_load, then the later of alert and
    shadow_score), the champion's path (ingest -> alert sent), the shadow step; and how many payments it stored."""

    whole_s: float
    champion_s: float
    shadow_s: float
    loaded: int


def _task(name: str, url: str, loaded: Loaded, settings: Settings, done: Connection) -> None:
    """A forked task process: alert or shadow_score on a connection of its own; sends back
    (when it finished, its summary)."""
    conn = psycopg2.connect(url)
    try:
        if name == "alert":
            summary = steps.alert(conn, settings)
        else:
            summary = shadow.shadow_loaded(conn, loaded, settings)
    finally:
        conn.close()
    done.send((time.perf_counter(), summary))


def _side_by_side(
    url: str, loaded: Loaded, settings: Settings
) -> dict[str, tuple[float, dict[str, Any]]]:
    """alert and shadow_score in two forked processes at once: each one's (end, summary)."""
    fork = multiprocessing.get_context("forkserver")
    fork.set_forkserver_preload([*TASK_MODULES, __name__])
    pipes, processes = {}, []
    for name in ("alert", "shadow_score"):
        receiver, sender = fork.Pipe(duplex=False)
        process = fork.Process(target=_task, args=(name, url, loaded, settings, sender))
        process.start()
        sender.close()  # the child's copy only: recv() sees EOF if the child dies
        pipes[name] = receiver
        processes.append(process)
    try:
        return {name: pipe.recv() for name, pipe in pipes.items()}
    except EOFError as error:
        raise RuntimeError("a bench task process died before it finished") from error
    finally:
        for process in processes:
            process.join(timeout=60)
            if process.exitcode != 0:
                raise RuntimeError(f"bench task process ended with {process.exitcode}")


def load_minute(
    url: str,
    start: datetime,
    model: Model,
    client: EndpointClient,
    settings: Settings,
    *,
    catch_up: bool = False,
) -> steps.Processed:
    """The minute from `start` from ingest to score_and_load (no alert, no shadow), on a
    connection of its own; `catch_up` as the DAG's ingest (from the high-water mark, with the look-back)."""
    conn = psycopg2.connect(url)
    try:
        return run_interval(
            conn,
            start,
            start + timedelta(minutes=1),
            run_id=RunId(f"bench__{start.isoformat()}"),
            model=model,
            client=client,
            settings=settings,
            send_alerts=False,
            shadow=False,
            catch_up=catch_up,
        )
    finally:
        conn.close()


def run_minute(
    url: str, start: datetime, model: Model, client: EndpointClient, settings: Settings
) -> MinuteRun:
    """The minute from `start`, as the DAG runs it, into the database at `url`."""
    began = time.perf_counter()
    summary = load_minute(url, start, model, client, settings)
    loaded = time.perf_counter()
    ends = _side_by_side(url, summary.loaded, settings)
    (alert_done, _), (shadow_done, shadow_summary) = ends["alert"], ends["shadow_score"]
    if "error" in shadow_summary:
        raise RuntimeError(f"shadow scoring failed: {shadow_summary['error']}")
    return MinuteRun(
        whole_s=max(alert_done, shadow_done) - began,
        champion_s=alert_done - began,
        shadow_s=shadow_done - loaded,
        loaded=summary.loaded.loaded,
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
