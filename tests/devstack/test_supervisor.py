"""`fraud-dev run` starts services in their own process groups and leaves nothing behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from fraud_devstack.stack.supervisor import ServiceSpec, Supervisor

ARGS = ("--free-ports", "--no-backfill", "--only", "mailpit,sagemaker-local")


@pytest.mark.slow
def test_ctrl_c_stops_every_child_and_leaves_no_process(database_url, tmp_path, launch_stack):
    state_dir = tmp_path / "state"
    stack = launch_stack(state_dir, *ARGS)
    state = stack.wait_for_state()
    assert set(state["children"]) == {"mailpit", "sagemaker-local"}
    assert httpx.get(f"{state['urls']['inbox']}/health").text == "ok"
    assert httpx.get(f"{state['urls']['model']}/ping").status_code == 200
    children = list(state["children"].values())
    for pid in children:  # each child leads its own process group, apart from ours
        assert os.getpgid(pid) == pid != os.getpgid(0)
    assert set(children) <= set(stack.left_behind())
    output = stack.stop(signal.SIGINT)  # Ctrl-C
    assert stack.process.returncode == 0, output
    assert "no process left" in output
    assert stack.left_behind() == []
    assert (state_dir / "logs" / "mailpit.log").read_text().count("SMTP on") == 1


@pytest.mark.slow
def test_a_service_that_cannot_start_stops_the_others(
    database_url, tmp_path, monkeypatch, launch_stack
):
    # The model server cannot load a model from a directory without one: it exits at once.
    no_model = tmp_path / "no-model"
    no_model.mkdir()
    (no_model / "metadata.json").write_text("{}")
    monkeypatch.setenv("ARTIFACTS_DIR", str(no_model))
    state_dir = tmp_path / "state"
    stack = launch_stack(state_dir, *ARGS)
    output = stack.finish()
    assert stack.process.returncode == 1, output
    assert "sagemaker-local exited" in output
    assert not (state_dir / "stack.json").exists()
    assert "no process left" in output


def test_a_start_refused_for_busy_ports_leaves_the_running_stacks_state(tmp_path):
    """Issue 32: a second `make run` refused because the first holds the ports says so, and
    leaves the first one's `stack.json` (what runs where) as it was."""
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    running = state_dir / "stack.json"
    running.write_text('{"urls": {"payments": "the running stack"}}')
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        env = {**os.environ, "PAYMENTS_API_URL": f"http://127.0.0.1:{port}"}
        command = [sys.executable, "-m", "fraud_devstack.cli", "run", "--state-dir", str(state_dir)]
        done = subprocess.run(
            [*command, "--no-backfill"], env=env, capture_output=True, text=True, timeout=120
        )
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"ports already in use: payments={port}" in done.stdout, done.stdout + done.stderr
    assert running.read_text() == '{"urls": {"payments": "the running stack"}}'


LOSES_FIRST_SIGTERM = """
import signal, sys, time
seen = []
def handler(signum, frame):
    seen.append(signum)
    print("SIGTERM", len(seen), flush=True)
    if len(seen) > 1:  # the first one is lost, as in a garbage-collection callback
        sys.exit(0)
signal.signal(signal.SIGTERM, handler)
print("handler", "installed", flush=True)
while True:
    time.sleep(0.1)
"""


def test_a_lost_first_sigterm_gets_a_second_one_before_sigkill(tmp_path):
    """Python drops a SystemExit raised while a GC callback runs (seen from Airflow's scheduler):
    the child's own process gets SIGTERM once more after the grace, so it exits without SIGKILL."""
    supervisor = Supervisor(tmp_path, dict(os.environ))
    child = supervisor.start(
        ServiceSpec("stubborn", [sys.executable, "-c", LOSES_FIRST_SIGTERM], lambda: True)
    )
    log = tmp_path / "stubborn.log"
    deadline = time.monotonic() + 30
    while "handler installed" not in log.read_text():
        assert time.monotonic() < deadline and child.exit_code() is None
        time.sleep(0.1)
    said: list[str] = []
    assert supervisor.stop(grace=1.0, progress=said.append) == []
    assert child.exit_code() == 0  # its own exit, not -9
    assert "SIGTERM 2" in log.read_text()
    assert any("SIGTERM again" in line for line in said), said
    assert not any("SIGKILL" in line for line in said), said
