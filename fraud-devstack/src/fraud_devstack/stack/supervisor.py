"""Run a set of long-lived child processes, each in its own process group, and stop them all.

Each child starts in a new session (`start_new_session=True`), so Ctrl-C in the terminal reaches
only the supervisor, which then stops the children in reverse order: SIGTERM to each process
group and to every descendant that left it (Airflow puts each task in its own group), a grace
period, then SIGKILL. `stop()` returns whatever is still alive afterwards: nothing, or a bug.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

import psutil

HealthCheck = Callable[[], bool]


@dataclass(frozen=True)
class ServiceSpec:
    """One long-running process: `name` is also its log file and its docker-compose service."""

    name: str
    command: list[str]
    health: HealthCheck
    env: dict[str, str] = field(default_factory=dict)
    oneshot: bool = False  # a job that ends by itself (a back-fill), not a service
    # SIGTERM to the process alone: it stops its own children. Airflow's components do (the
    # scheduler's LocalExecutor lets running tasks finish); signalled with their whole process
    # group, the scheduler's forked workers hung in its handler until SIGKILL.
    stops_its_children: bool = False


@dataclass
class Child:
    spec: ServiceSpec
    process: subprocess.Popen[bytes]
    log_path: Path
    started_at: float

    @property
    def name(self) -> str:
        return self.spec.name

    def exit_code(self) -> int | None:
        return self.process.poll()

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


SECOND_TERM_GRACE_S = 3.0  # after a lost first SIGTERM (see Supervisor.stop)


class Supervisor:
    """Starts children with their output in `<log_dir>/<name>.log` and stops them all."""

    def __init__(self, log_dir: Path, base_env: dict[str, str]) -> None:
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.base_env = base_env
        self.children: list[Child] = []

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def start(self, spec: ServiceSpec) -> Child:
        log_path = self.log_path(spec.name)
        with log_path.open("ab") as log:
            log.write(f"\n=== {time.strftime('%F %T')} start: {' '.join(spec.command)}\n".encode())
            log.flush()
            process = subprocess.Popen(
                spec.command,
                env={**self.base_env, **spec.env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        child = Child(spec, process, log_path, time.monotonic())
        self.children.append(child)
        return child

    def exited(self) -> list[Child]:
        """Services (not jobs) that have ended: something went wrong."""
        return [c for c in self.children if not c.spec.oneshot and c.exit_code() is not None]

    def wait_healthy(
        self,
        children: list[Child],
        timeout: float,
        progress: Callable[[str], None] = print,
    ) -> None:
        """Block until every child's health check passes; raise naming the ones that did not."""
        pending = list(children)
        deadline = time.monotonic() + timeout
        last_report = time.monotonic()
        while pending:
            for child in list(pending):
                if child.exit_code() is not None:
                    raise RuntimeError(
                        f"{child.name} exited with code {child.exit_code()} while starting; "
                        f"last lines of {child.log_path}:\n{child.log_tail()}"
                    )
                if _passes(child.spec.health):
                    pending.remove(child)
                    elapsed = time.monotonic() - child.started_at
                    progress(f"  ✓ {child.name} healthy ({elapsed:.1f} s)")
            if not pending:
                return
            if time.monotonic() > deadline:
                names = ", ".join(c.name for c in pending)
                raise TimeoutError(f"not healthy after {timeout:.0f} s: {names} (see their logs)")
            if time.monotonic() - last_report > 10:
                progress(f"  … waiting for {', '.join(c.name for c in pending)}")
                last_report = time.monotonic()
            time.sleep(0.3)

    def wait_done(
        self, job: Child, timeout: float, progress: Callable[[str], None] = print
    ) -> None:
        """Block until a one-shot job ends; raise if it fails or overruns."""
        deadline = time.monotonic() + timeout
        last_report = time.monotonic()
        while job.exit_code() is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{job.name} still running after {timeout:.0f} s")
            if time.monotonic() - last_report > 10:
                progress(f"  … waiting for {job.name}")
                last_report = time.monotonic()
            time.sleep(0.3)
        if job.exit_code() != 0:
            raise RuntimeError(
                f"{job.name} failed (exit {job.exit_code()}); last lines of {job.log_path}:\n"
                f"{job.log_tail()}"
            )
        progress(f"  ✓ {job.name} done ({time.monotonic() - job.started_at:.1f} s)")

    def stop(
        self,
        grace: float = 20.0,
        progress: Callable[[str], None] = print,
        only: Collection[str] | None = None,
    ) -> list[str]:
        """Stop the children (`only` those named, else all) and their descendants; return
        descriptions of survivors (none)."""
        chosen = [c for c in reversed(self.children) if only is None or c.name in only]
        tracked: list[psutil.Process] = []
        owner: dict[int, str] = {}
        for child in chosen:
            family = _family(child.process.pid)
            tracked.extend(family)
            owner.update({p.pid: child.name for p in family})
            if child.spec.stops_its_children:
                if family:
                    _signal(family[0], signal.SIGTERM)
                continue
            _signal_group(child.process.pid, signal.SIGTERM)
            for process in family:  # descendants that moved to another group (Airflow tasks)
                if _group(process) != child.process.pid:  # once: a second SIGTERM forces exits
                    _signal(process, signal.SIGTERM)
        began, slowest = time.monotonic(), ("", 0.0)

        def gone(process: psutil.Process) -> None:
            nonlocal slowest
            if time.monotonic() - began > slowest[1]:
                slowest = (owner.get(process.pid, "?"), time.monotonic() - began)

        _, alive = psutil.wait_procs(tracked, timeout=grace, callback=gone)
        # A SIGTERM whose handler ran inside a garbage-collection callback is lost (Python
        # prints "Exception ignored" and the SystemExit with it): a child's own process gets
        # one more, after the whole grace, before SIGKILL (seen once from Airflow's scheduler).
        mains = {c.process.pid for c in chosen}
        again = [p for p in alive if p.pid in mains]
        for process in again:
            progress(
                f"  {owner.get(process.pid, '?')} still running after {grace:.0f} s: SIGTERM again"
            )
            _signal(process, signal.SIGTERM)
        if again:
            _, alive = psutil.wait_procs(alive, timeout=SECOND_TERM_GRACE_S, callback=gone)
        if slowest[0]:
            progress(f"  slowest to stop: {slowest[0]} ({slowest[1]:.1f} s)")
        for process in alive:
            progress(
                f"  {process.pid} ({owner.get(process.pid, '?')}: {_describe(process)}) "
                f"ignored SIGTERM for {grace:.0f} s: SIGKILL"
            )
            _signal(process, signal.SIGKILL)
        for child in chosen:
            _signal_group(child.process.pid, signal.SIGKILL)  # anything spawned meanwhile
        _, alive = psutil.wait_procs(tracked, timeout=5)
        for child in chosen:
            try:
                child.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                alive.append(psutil.Process(child.process.pid))
        return [f"{p.pid} {_describe(p)}" for p in alive if _alive(p)]


def _passes(check: HealthCheck) -> bool:
    try:
        return bool(check())
    except Exception:
        return False


def _family(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _group(process: psutil.Process) -> int | None:
    try:
        return os.getpgid(process.pid)
    except (ProcessLookupError, PermissionError):
        return None


def _signal(process: psutil.Process, signum: int) -> None:
    with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
        process.send_signal(signum)


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _describe(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())[:120]
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return "?"
