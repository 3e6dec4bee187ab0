"""Airflow in the tests: a migrated AIRFLOW_HOME (the `airflow_env` fixture) and code run in a
fresh interpreter against it (a DagBag, `dag.test()`), as the scheduler's processes would."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from fraud_pipeline.config import REPO_ROOT

DAGS = REPO_ROOT / "airflow" / "dags"


def migrated_airflow_home(home: Path) -> dict[str, str]:
    """The environment of an AIRFLOW_HOME at `home` whose metadata database is migrated."""
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
    """Run `code` (dedented) in a new interpreter with `env`; its stdout, asserting it succeeded."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout
