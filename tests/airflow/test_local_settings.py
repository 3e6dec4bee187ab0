"""`make run`'s Airflow: the scheduler preloads the tasks' modules, so forked tasks skip the imports."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

from fraud_pipeline.devstack import airflow_local


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
