"""Issue #32: what `make run` prints — the database it really uses, and runs a stop interrupted
counted apart from failures."""

from __future__ import annotations

from fraud_devstack.stack import airflow_local
from fraud_devstack.stack.local_stack import LocalStack, Ports, StackOptions, run_states
from fraud_pipeline.config import Settings
from fraud_pipeline.storage import db


def test_a_run_a_stop_interrupted_is_not_counted_as_failed():
    runs = [
        {"dag_run_id": "scheduled__1", "state": "success", "note": None},
        {"dag_run_id": "scheduled__2", "state": "success"},
        {"dag_run_id": "scheduled__3", "state": "failed", "note": airflow_local.INTERRUPTED_NOTE},
        {"dag_run_id": "scheduled__4", "state": "running", "note": None},
    ]
    assert run_states(runs) == "1 interrupted, 1 running, 2 success"
    # A run that really failed still says so, also with a note of its own.
    runs.append({"dag_run_id": "scheduled__5", "state": "failed", "note": "looked at: endpoint"})
    assert run_states(runs) == "1 failed, 1 interrupted, 1 running, 2 success"
    assert run_states([]) == "no run yet"


def test_the_start_up_line_names_the_pipelines_database(clean_db, tmp_path, capsys):
    """DATABASE_URL names the pipeline's database: the line shows it, not the server's
    maintenance database `postgres` the stack also connects to."""
    settings = Settings(_env_file=None, database_url=clean_db)
    stack = LocalStack(StackOptions(state_dir=tmp_path, ports=Ports.free()), settings)
    server = stack.prepare_database()
    assert db.database_name(server) == "postgres"
    line = next(x for x in capsys.readouterr().out.splitlines() if "PostgreSQL:" in x)
    assert line.endswith(f"PostgreSQL: {db.redact(clean_db)}"), line
