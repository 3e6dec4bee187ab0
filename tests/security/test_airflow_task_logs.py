"""Airflow's own task log files hold no card number: what the task runner and its supervisor
write (the task's stdout, structlog events, the failure's traceback) is masked too."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import yaml

from fraud_devstack.stack import airflow_local
from fraud_pipeline.config import REPO_ROOT
from fraud_pipeline.net import free_port
from fraud_pipeline.security import airflow_logging
from fraud_pipeline.security.log_masking import AIRFLOW_LOGGING_CONFIG_CLASS
from tests.support.airflow_runs import airflow_home, close_interpreter, run_python
from tests.support.cards import SHAPED, broad_scan, leaks, written
from tests.support.processes import stop_process
from tests.support.servers import serve

# A task as a careless one would be (it imports nothing of ours): it prints, logs through
# structlog and stdlib, and fails quoting the payments API's error body.
DAG = """
import logging
from datetime import datetime

import httpx
import structlog
from airflow.sdk import dag, task


@dag(dag_id="card_leak", schedule=None, start_date=datetime(2026, 1, 1), catchup=False)
def card_leak():
    @task(retries=0)
    def leak():
        print("printed: " + {printed!r})
        structlog.get_logger().info("structlog: " + {structlog!r}, card={field!r})
        logging.getLogger("leak").warning("stdlib: %s", {stdlib!r})
        body = httpx.get({url!r}).text
        raise RuntimeError("payments API answered 500: " + body)

    leak()


card_leak()
"""


def error_api(body: str) -> ThreadingHTTPServer:
    """A payments API that answers every request 500 with `body`."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            payload = body.encode()
            self.send_response(500)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


@contextlib.contextmanager
def execution_api(env: dict[str, str], port: int) -> Iterator[None]:
    """Airflow's API server (its task execution API only), as `make run` starts it."""
    airflow = str(Path(sys.executable).parent / "airflow")
    command = [airflow, "api-server", "--apps", "execution", "--host", "127.0.0.1"]
    process = subprocess.Popen(
        [*command, "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300  # a ceiling: it starts in 10-30 s on a busy laptop
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/execution/health").status_code == 200:
                    break
            assert process.poll() is None, "the API server stopped"
            assert time.monotonic() < deadline, "the API server never answered"
            time.sleep(0.5)
        yield
    finally:
        stop_process(process, grace_s=60)


def test_the_project_logging_config_is_airflows_with_every_handler_masked():
    module, name = AIRFLOW_LOGGING_CONFIG_CLASS.rsplit(".", 1)
    assert module == airflow_logging.__name__ and name == "LOGGING_CONFIG"
    handlers = airflow_logging.LOGGING_CONFIG["handlers"]
    assert handlers and all("mask_card_numbers" in h["filters"] for h in handlers.values())
    # No remote log configured: the local file is read (Airflow's "not implemented").
    with pytest.raises(NotImplementedError):
        airflow_logging.REMOTE_TASK_LOG.read("x.log", None)
    assert getattr(airflow_logging.REMOTE_TASK_LOG, "stream", None) is None


def test_every_airflow_the_project_runs_uses_it(tmp_path):
    """`make run`, docker-compose (every Airflow service) and the Helm values."""
    env = airflow_local.airflow_env(
        airflow_local.prepare_home(tmp_path),
        metadata_url="postgresql://x/y",
        database_url="postgresql://x/z",
        model_url="http://127.0.0.1:9",
        port=8080,
        smtp_host="127.0.0.1",
        smtp_port=25,
    )
    assert env["AIRFLOW__LOGGING__LOGGING_CONFIG_CLASS"] == AIRFLOW_LOGGING_CONFIG_CLASS
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    airflow = [s for n, s in compose["services"].items() if n.startswith("airflow")]
    assert airflow and all(
        s["environment"]["AIRFLOW__LOGGING__LOGGING_CONFIG_CLASS"] == AIRFLOW_LOGGING_CONFIG_CLASS
        for s in airflow
    )
    helm = yaml.safe_load((REPO_ROOT / "infra" / "helm" / "values.yaml").read_text())
    assert helm["config"]["logging"]["logging_config_class"] == AIRFLOW_LOGGING_CONFIG_CLASS


@pytest.mark.airflow
def test_a_task_log_file_written_by_airflow_holds_no_card_number(tmp_path):
    """A real run through LocalExecutor: the task process runs under Airflow's supervisor, which
    writes AIRFLOW_HOME/logs/... (as under the scheduler of `make run`). Its own AIRFLOW_HOME:
    the DAG must be in the DAGs folder to run through an executor."""
    shapes = sorted(SHAPED)
    body = "declined: " + ", ".join(written(shape) for shape in shapes[:4])
    api = error_api(body)
    thread = serve(api)
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "card_leak_dag.py").write_text(
        DAG.format(
            printed=written(shapes[4]),
            structlog=written(shapes[5]),
            field=written(shapes[6]),
            stdlib=written(shapes[7]),
            url=f"http://127.0.0.1:{api.server_address[1]}/error",
        )
    )
    port = free_port()
    home = tmp_path / "airflow"
    home.mkdir()
    env = {
        **airflow_home(home, dags),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": "test-only-jwt-secret-" + "x" * 64,
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",  # the task's info lines in the file too
    }
    logs = home / "logs" / "dag_id=card_leak"
    try:
        with execution_api(env, port):
            out = run_python(
                f"""
                from airflow.dag_processing.dagbag import DagBag
                dag = DagBag(dag_folder={str(dags)!r}).dags["card_leak"]
                print("STATE", dag.test(use_executor=True).state)
                """,
                env,
            )
    finally:
        close_interpreter(home)
        api.shutdown()
        thread.join()
    assert "STATE failed" in out
    files = sorted(logs.rglob("*.log"))
    assert files, f"no task log under {logs}"
    text = "\n".join(f.read_text() for f in files)
    numbers = [SHAPED[shape][0] for shape in shapes[:8]]
    assert leaks(numbers, text) == []
    assert broad_scan([(str(f), f.read_text()) for f in files]) == []
    # What each line said is there, masked (an empty or unmasked log fails above or here).
    for shape in shapes[:8]:
        assert "*" * 8 + SHAPED[shape][0][-4:] in text, shape
    for said in ("printed: ", "structlog: ", "stdlib: ", "Task failed with exception"):
        assert said in text, said
