"""Real Airflow runs in tests: a migrated AIRFLOW_HOME, and DAG code run in another interpreter.

Not in the test's own process (`dag.test()` there would keep Airflow's settings and logging in
pytest's process between tests), but not a fresh one per call either: importing Airflow and the
package costs 5-8 s, so each test worker keeps one interpreter per AIRFLOW_HOME
(`airflow_worker.py`) that imported them once and runs each test's code with the test's own
environment.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import textwrap
from pathlib import Path

from fraud_pipeline import clock
from fraud_pipeline.config import REPO_ROOT
from fraud_pipeline.security.log_masking import AIRFLOW_LOGGING_CONFIG_CLASS

DAGS = REPO_ROOT / "airflow" / "dags"


def airflow_home(home: Path, dags: Path = DAGS) -> dict[str, str]:
    """The environment of an AIRFLOW_HOME at `home` with a migrated metadata database."""
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        # As every Airflow the project runs: card numbers masked in task logs too.
        "AIRFLOW__LOGGING__LOGGING_CONFIG_CLASS": AIRFLOW_LOGGING_CONFIG_CLASS,
    }
    subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
        env=env,
        check=True,
        capture_output=True,
    )
    return env


class AirflowInterpreter:
    """One `airflow_worker.py` process: Airflow imported once, code run request after request."""

    def __init__(self, env: dict[str, str]) -> None:
        # INFO for all: the tests read task logs (e.g. why a sensor waits) in the output.
        env = {**env, "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO"}
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("airflow_worker.py"))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            text=True,
            cwd=REPO_ROOT,
        )

    def run(self, code: str, env: dict[str, str], timeout_s: float) -> tuple[bool, str]:
        """(the code returned, its output); on a timeout the process is stopped and it says so."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps({"code": code, "env": env}) + "\n")
        self.process.stdin.flush()
        ready, _, _ = select.select([self.process.stdout], [], [], timeout_s)
        line = self.process.stdout.readline() if ready else ""
        if not line:
            self.close()
            return False, f"no answer from the Airflow interpreter within {timeout_s:.0f} s"
        answer = json.loads(line)
        return answer["ok"], answer["output"]

    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


_interpreters: dict[str, AirflowInterpreter] = {}


def close_interpreter(home: Path | str) -> None:
    """Stop the interpreter of one AIRFLOW_HOME (a test's own home, once it is done)."""
    interpreter = _interpreters.pop(str(home), None)
    if interpreter is not None:
        interpreter.close()


def close_interpreters() -> None:
    """Stop this worker's Airflow interpreters (the session's end)."""
    while _interpreters:
        _interpreters.popitem()[1].close()


def run_python(code: str, env: dict[str, str], timeout_s: float = 300) -> str:
    """Run `code` with `env` in this worker's Airflow interpreter for env's AIRFLOW_HOME; its
    output, or a failure showing its end.

    The test's frozen instant (FRAUD_NOW now, e.g. from --clock-instants) wins over the one the
    session's `airflow_env` copied at its start."""
    if clock.FRAUD_NOW in os.environ:
        env = {**env, clock.FRAUD_NOW: os.environ[clock.FRAUD_NOW]}
    home = env.get("AIRFLOW_HOME", "")
    interpreter = _interpreters.get(home)
    if interpreter is None or not interpreter.alive():
        interpreter = _interpreters[home] = AirflowInterpreter(env)
    ok, output = interpreter.run(textwrap.dedent(code), env, timeout_s)
    assert ok, output[-6000:]
    return output


def dag_test(dag_id: str, logical_dates: list[str]) -> str:
    """The code of `dag.test()` runs at these logical dates (ISO), printing each run's state."""
    return f"""
        from airflow.dag_processing.dagbag import DagBag
        import pendulum
        dag = DagBag(dag_folder={str(DAGS)!r}).dags[{dag_id!r}]
        for logical_date in {logical_dates!r}:
            print("STATE", dag.test(logical_date=pendulum.parse(logical_date)).state)
        """
