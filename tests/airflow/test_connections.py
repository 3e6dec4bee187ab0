"""Issue #32: the DAGs' connection reader falls back to the environment's settings only when a
connection is truly undefined; a secrets backend that fails stops the task, saying so."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from fraud_pipeline.config import REPO_ROOT
from fraud_pipeline.storage import db

OPEN_FRAUD_DB = """
from fraud_pipeline.pipeline.airflow_support import db_connection
with db_connection() as conn, conn.cursor() as cur:
    cur.execute("SELECT current_database()")
    print("connected to", cur.fetchone()[0])
"""
UNREACHABLE = "tests.support.secrets_backends.UnreachableBackend"


def _open_fraud_db(tmp_path, database_url: str, **airflow: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env |= {
        "AIRFLOW_HOME": str(tmp_path),
        "DATABASE_URL": database_url,
        "PYTHONPATH": str(REPO_ROOT),
        **airflow,
    }
    return subprocess.run(
        [sys.executable, "-c", OPEN_FRAUD_DB],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_an_unreachable_secrets_backend_fails_loudly_instead_of_falling_back(tmp_path, clean_db):
    result = _open_fraud_db(tmp_path, clean_db, AIRFLOW__SECRETS__BACKEND=UNREACHABLE)
    assert result.returncode != 0, result.stdout
    assert "connected to" not in result.stdout  # never the environment's DATABASE_URL
    assert "ConnectionUnavailable" in result.stderr, result.stderr[-2000:]
    assert "'fraud_db'" in result.stderr and UNREACHABLE in result.stderr


def test_without_a_backend_an_undefined_connection_falls_back_to_database_url(tmp_path, clean_db):
    result = _open_fraud_db(tmp_path, clean_db)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"connected to {db.database_name(clean_db)}" in result.stdout


def test_a_connection_defined_beside_a_failing_backend_is_used(tmp_path, clean_db, database_url):
    """The backend is consulted first and fails; the environment's connection still serves."""
    from fraud_devstack.stack.airflow_local import postgres_connection

    result = _open_fraud_db(
        tmp_path,
        database_url,  # the fallback would reach another database: the connection must win
        AIRFLOW__SECRETS__BACKEND=UNREACHABLE,
        AIRFLOW_CONN_FRAUD_DB=postgres_connection(clean_db),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"connected to {db.database_name(clean_db)}" in result.stdout
    json.loads(postgres_connection(clean_db))  # the JSON form Airflow reads
