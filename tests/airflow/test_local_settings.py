"""`make run`'s Airflow: the scheduler preloads the tasks' modules, so forked tasks skip the imports."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import uuid

import pytest

from fraud_devstack import cli
from fraud_devstack.stack import airflow_local
from fraud_pipeline.net import free_port
from fraud_pipeline.storage import db


def test_the_scheduler_preloads_every_task_module_and_the_other_processes_none(tmp_path):
    home = airflow_local.prepare_home(tmp_path)
    settings = home.path / "config" / "airflow_local_settings.py"
    assert settings.read_text() == airflow_local.LOCAL_SETTINGS
    # Every name still exists (a module moved by a refactoring would silently stop preloading).
    assert [m for m in airflow_local.TASK_MODULES if importlib.util.find_spec(m) is None] == []
    # Airflow's command line is `airflow <command>`; the file runs in each Airflow process.
    check = (
        f"import runpy, sys; sys.argv = ['airflow', sys.argv[1]]; runpy.run_path({str(settings)!r}); "
        f"print(sorted(m for m in {airflow_local.TASK_MODULES!r} if m in sys.modules))"
    )
    loaded = {}
    for command in ("scheduler", "api-server"):
        result = subprocess.run(
            [sys.executable, "-c", check, command], capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr[-3000:]
        loaded[command] = result.stdout.strip()
    assert loaded["scheduler"] == repr(sorted(airflow_local.TASK_MODULES))
    assert loaded["api-server"] == "[]"


@pytest.mark.airflow
def test_the_airflow_cli_works_on_the_stacks_own_state(tmp_path, database_url, capfd):
    """Issue #15: `fraud-dev airflow -- ...` (and AIRFLOW_HOME=<state>/airflow airflow ...)
    reads the stack's settings: its metadata database and DAGs folder, no stray sqlite file."""
    metadata = db.with_database(database_url, f"airflow_cli_{uuid.uuid4().hex[:8]}")
    db.ensure_database(metadata)
    try:
        home = airflow_local.prepare_home(tmp_path)
        env = airflow_local.airflow_env(
            home,
            metadata_url=metadata,
            database_url=database_url,
            model_url="http://127.0.0.1:9",
            port=free_port(),
            smtp_host="127.0.0.1",
            smtp_port=free_port(),
        )
        config = airflow_local.write_config(home.path, env)
        assert config.stat().st_mode & 0o077 == 0  # it holds the Fernet key
        assert len(home.jwt_secret) >= airflow_local.JWT_SECRET_BYTES
        state = ["airflow", "--state-dir", str(tmp_path), "--"]
        assert cli.main([*state, "db", "migrate"]) == 0
        assert cli.main([*state, "dags", "reserialize"]) == 0
        capfd.readouterr()
        assert cli.main([*state, "dags", "list", "--output", "plain"]) == 0
        listed = capfd.readouterr().out
        assert all(dag_id in listed for dag_id in airflow_local.DAG_IDS), listed
        assert cli.main([*state, "dags", "list-runs", "fraud_pipeline"]) == 0
        capfd.readouterr()
        # Issue #32: machine-readable output is only that (no warning printed before it).
        assert cli.main([*state, "dags", "list", "-o", "json"]) == 0
        listed_json = json.loads(capfd.readouterr().out)
        assert {d["dag_id"] for d in listed_json} >= set(airflow_local.DAG_IDS)
        assert not list(home.path.glob("*.db"))  # no stray sqlite metadata database
    finally:
        db.drop_database(metadata)


def test_the_airflow_cli_without_a_stack_says_what_to_do(tmp_path, capsys):
    assert cli.main(["airflow", "--state-dir", str(tmp_path), "--", "dags", "list"]) == 1
    assert "start the stack once with `make run`" in capsys.readouterr().err
