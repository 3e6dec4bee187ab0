"""Real Airflow runs in tests: a migrated AIRFLOW_HOME, and DAG code run in a fresh interpreter
(`dag.test()` in the test's own process would keep Airflow's settings between tests)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from fraud_pipeline import clock
from fraud_pipeline.config import REPO_ROOT

DAGS = REPO_ROOT / "airflow" / "dags"


def airflow_home(home: Path) -> dict[str, str]:
    """The environment of an AIRFLOW_HOME at `home` with a migrated metadata database."""
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
    }
    subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
        env=env,
        check=True,
        capture_output=True,
    )
    return env


def run_python(code: str, env: dict[str, str], timeout_s: float = 300) -> str:
    """Run `code` in a fresh interpreter; its output, or a failure showing its end.

    The test's frozen instant (FRAUD_NOW now, e.g. from --clock-instants) wins over the one the
    session's `airflow_env` copied at its start."""
    if clock.FRAUD_NOW in os.environ:
        env = {**env, clock.FRAUD_NOW: os.environ[clock.FRAUD_NOW]}
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def dag_test(dag_id: str, logical_dates: list[str]) -> str:
    """The code of `dag.test()` runs at these logical dates (ISO), printing each run's state."""
    return f"""
        from airflow.dag_processing.dagbag import DagBag
        import pendulum
        dag = DagBag(dag_folder={str(DAGS)!r}).dags[{dag_id!r}]
        for logical_date in {logical_dates!r}:
            print("STATE", dag.test(logical_date=pendulum.parse(logical_date)).state)
        """
