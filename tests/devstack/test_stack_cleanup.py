"""A stack test that fails or times out leaves no process behind (issue 18): the `launch_stack`
fixture stops every stack it started, then SIGKILLs whatever still carries its id. Proven on a
real pytest run of two failing tests, each starting a real `fraud-dev run`."""

from __future__ import annotations

import os

import pytest

from tests.support.processes import processes_with, run_inner_pytest

INNER_TESTS = """
import os
import time
from pathlib import Path

import pytest

ARGS = ("--free-ports", "--no-backfill", "--only", "mailpit")


def _started(launch_stack, tmp_path):
    stack = launch_stack(tmp_path / "state", *ARGS)
    state = stack.wait_for_state()
    pids = [stack.process.pid, *state["children"].values()]
    with open(os.environ["STACKS_SEEN"], "a") as seen:
        seen.write(stack.stack_id + " " + " ".join(map(str, pids)) + "\\n")


def test_fails(launch_stack, tmp_path):
    _started(launch_stack, tmp_path)
    assert False, "a stack test failing"


@pytest.mark.timeout(20)
def test_times_out(launch_stack, tmp_path):
    _started(launch_stack, tmp_path)
    time.sleep(600)
"""


@pytest.mark.slow
def test_a_failed_or_timed_out_stack_test_leaves_no_process(database_url, tmp_path):
    (tmp_path / "test_inner.py").write_text(INNER_TESTS)
    seen = tmp_path / "stacks_seen"
    inner = run_inner_pytest(
        tmp_path / "test_inner.py", env={"STACKS_SEEN": str(seen)}, timeout=900
    )
    assert inner.returncode == 1, inner.stdout[-3000:] + inner.stderr[-3000:]
    assert "2 failed" in inner.stdout and "Timeout" in inner.stdout, inner.stdout[-3000:]
    stacks = [line.split() for line in seen.read_text().splitlines()]
    assert len(stacks) == 2  # both stacks were up, with their services, when the tests ended
    for stack_id, *pids in stacks:
        assert len(pids) == 2  # the stack and its mail catcher
        assert processes_with(stack_id) == []
        for pid in map(int, pids):
            assert not os.path.exists(f"/proc/{pid}") or _zombie(pid), pid


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1].startswith("Z")
    except OSError:
        return True
