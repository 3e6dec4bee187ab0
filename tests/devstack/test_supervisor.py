"""`fraud-pipeline run` starts services in their own process groups and leaves nothing behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from fraud_pipeline.devstack.local_stack import STACK_ID_ENV


def processes_with(marker: str) -> list[int]:
    """PIDs whose environment carries the stack's id: the children and all their descendants."""
    found = []
    needle = f"{STACK_ID_ENV}={marker}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def wait_for_file(path: Path, process: subprocess.Popen[str], timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(f"run exited early:\n{process.stdout.read()}")  # type: ignore[union-attr]
        assert time.monotonic() < deadline, f"no {path} after {timeout} s"
        time.sleep(0.3)
    return json.loads(path.read_text())


def start_stack(state_dir: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fraud_pipeline.cli",
            "run",
            "--state-dir",
            str(state_dir),
            "--free-ports",
            "--no-backfill",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=os.environ.copy(),
    )


@pytest.mark.slow
def test_ctrl_c_stops_every_child_and_leaves_no_process(database_url, tmp_path):
    state_dir = tmp_path / "state"
    run = start_stack(state_dir, "--only", "mailpit,sagemaker-local")
    try:
        state = wait_for_file(state_dir / "stack.json", run, timeout=120)
        assert set(state["children"]) == {"mailpit", "sagemaker-local"}
        assert httpx.get(f"{state['urls']['inbox']}/health").text == "ok"
        assert httpx.get(f"{state['urls']['model']}/ping").status_code == 200
        children = list(state["children"].values())
        for pid in children:  # each child leads its own process group, apart from ours
            assert os.getpgid(pid) == pid != os.getpgid(0)
        assert set(children) <= set(processes_with(state["stack_id"]))
        run.send_signal(signal.SIGINT)
        output, _ = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, output
    assert "no process left" in output
    assert processes_with(state["stack_id"]) == []
    assert (state_dir / "logs" / "mailpit.log").read_text().count("SMTP on") == 1


@pytest.mark.slow
def test_a_service_that_cannot_start_stops_the_others(database_url, tmp_path, monkeypatch):
    # The model server cannot load a model from a directory without one: it exits at once.
    no_model = tmp_path / "no-model"
    no_model.mkdir()
    (no_model / "metadata.json").write_text("{}")
    monkeypatch.setenv("ARTIFACTS_DIR", str(no_model))
    state_dir = tmp_path / "state"
    run = start_stack(state_dir, "--only", "mailpit,sagemaker-local")
    output, _ = run.communicate(timeout=120)
    assert run.returncode == 1, output
    assert "sagemaker-local exited" in output
    assert not (state_dir / "stack.json").exists()
    assert "no process left" in output
