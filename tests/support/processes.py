"""Starting and stopping `fraud-dev run` stacks in tests, and finding what they leave behind.

Every stack a test starts carries a stack id in its environment (`FRAUD_STACK_ID`), inherited by
all its descendants, so a test can always find and stop them: also when it times out or fails.
Waits are on conditions with generous ceilings: CI machines and laptops are not quiet.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from fraud_devstack.stack.local_stack import STACK_ID_ENV
from fraud_pipeline.config import REPO_ROOT


def stop_process(process: subprocess.Popen, grace_s: float = 10.0) -> None:
    """SIGTERM a test's server and reap it; SIGKILL if it is still there after `grace_s`
    (every test that starts a process stops it this way, in a `finally`)."""
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


_SUITE_PLUGINS = ("-p", "tests.support.fixtures", "-p", "no:cacheprovider")


def run_inner_pytest(
    test_file: Path, *args: str, env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run pytest on `test_file` in a child, with this suite's fixtures (`tests.support.fixtures`),
    to check how the suite itself behaves: clean-up after a failure, worker groups."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", *_SUITE_PLUGINS, "-q", *args, str(test_file)],
        cwd=test_file.parent,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def processes_with(stack_id: str) -> list[int]:
    """PIDs whose environment carries the stack's id: the stack and all its descendants."""
    found = []
    needle = f"{STACK_ID_ENV}={stack_id}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


class Stack:
    """A `fraud-dev run` subprocess with a known stack id."""

    def __init__(self, state_dir: Path, *args: str) -> None:
        self.state_dir = state_dir
        self.stack_id = uuid.uuid4().hex
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fraud_devstack.cli",
                "run",
                "--state-dir",
                str(state_dir),
                *args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, STACK_ID_ENV: self.stack_id},
        )
        self.output = ""

    def wait_for_state(self, timeout: float = 300.0) -> dict:
        """`stack.json` once the stack is up (it exits early: fail with its output)."""
        path = self.state_dir / "stack.json"
        deadline = time.monotonic() + timeout
        while not path.exists():
            if self.process.poll() is not None:
                raise AssertionError(f"run exited early:\n{self.finish()}")
            assert time.monotonic() < deadline, f"no {path} after {timeout} s"
            time.sleep(0.3)
        return json.loads(path.read_text())

    def finish(self, timeout: float = 300.0) -> str:
        """Its whole output once it has exited by itself (killed, and failing, if it does not)."""
        try:
            self.output, _ = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"the stack did not exit within {timeout} s: killed") from None
        return self.output

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 300.0) -> str:
        """Ask it to stop (SIGTERM, or SIGINT for Ctrl-C) and return its output."""
        if self.process.poll() is None:
            self.process.send_signal(signum)
        return self.finish(timeout)

    def kill(self) -> None:
        """SIGKILL the stack and every descendant still carrying its id (a test's last resort)."""
        for pid in processes_with(self.stack_id):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.kill()
        self.output, _ = self.process.communicate()

    def left_behind(self) -> list[int]:
        return processes_with(self.stack_id)

    def ensure_stopped(self, grace_s: float = 60.0) -> None:
        """Whatever the test's end: a graceful stop (killed, not failing, if it takes longer than
        `grace_s`), then SIGKILL to anything still carrying the stack id."""
        with contextlib.suppress(AssertionError):
            self.stop(signal.SIGTERM, grace_s)
        if self.left_behind():
            self.kill()
