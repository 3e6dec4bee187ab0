"""Reliability scenarios against the real services, and the table they print at the end.

Each scenario appends one `Outcome` (expected and got, per measure) to the session's table;
`pytest_terminal_summary` prints it, so `make reliability` shows one line per scenario."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from fraud_devstack.stack.faults import FaultProxy
from fraud_pipeline.config import Settings
from fraud_pipeline.serving.endpoint import EndpointClient
from tests.support.aws import runtime_for
from tests.support.servers import Services

MEASURES = ("payments", "stored", "duplicates", "lost", "alerts", "dup_alerts", "quarantined")


@dataclass
class Outcome:
    scenario: str
    expected: dict[str, int]
    got: dict[str, int]
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.expected == self.got


TABLE: list[Outcome] = []


def format_table(rows: list[Outcome]) -> list[str]:
    """One line per scenario: every measure as got/expected, then PASS or FAIL."""
    width = max([len(r.scenario) for r in rows] + [8])
    head = f"{'scenario':<{width}}  " + "  ".join(f"{m:>13}" for m in MEASURES) + "  result"
    lines = [head, "-" * len(head)]
    for row in rows:
        cells = "  ".join(f"{row.got[m]:>6} / {row.expected[m]:<4}" for m in MEASURES)
        lines.append(f"{row.scenario:<{width}}  {cells}  {'PASS' if row.ok else 'FAIL'}")
    return lines


@dataclass
class Stack:
    """The real services behind fault proxies; `settings` point the pipeline at the proxies."""

    services: Services
    model_proxy: FaultProxy
    payments_proxy: FaultProxy
    settings: Settings
    window: tuple[pd.Timestamp, pd.Timestamp]
    seed: int = 11
    rate_per_min: float = 40
    log: list[str] = field(default_factory=list)
    _defaults: dict[str, float] = field(default_factory=dict)

    def client(
        self, read_timeout: float = 2.0, attempts: int = 3, deadline_s: float = 20
    ) -> EndpointClient:
        """Short timeouts and few retries: a scenario's outage costs seconds, not minutes."""
        return EndpointClient(
            runtime_for(self.model_proxy.url, read_timeout),
            self.settings.sagemaker_endpoint_name,
            max_attempts=attempts,
            base_delay_s=0.01,
            max_delay_s=0.05,
            deadline_s=deadline_s,
        )

    def limit(self, **settings: float) -> None:
        """Tighter fetch limits for a scenario (PAYMENTS_API_FETCH_BUDGET_S...); `relax` undoes."""
        for name, value in settings.items():
            self._defaults.setdefault(name, getattr(self.settings, name))
            setattr(self.settings, name, value)

    def relax(self) -> None:
        for name, value in self._defaults.items():
            setattr(self.settings, name, value)
        self._defaults.clear()


@dataclass
class ThrowawayPostgres:
    """A PostgreSQL server of the test's own (pgserver), which it may crash and restart at will."""

    data_dir: Path
    url: str  # the migrated application database on it

    def restart(self) -> None:
        """`pg_ctl restart -m immediate`: every session is cut off, as in a crash, then recovery."""
        self._pg_ctl("-m", "immediate", "-l", str(self.data_dir / "log"), "restart")

    def stop(self) -> None:
        """pgserver only stops the postmaster it started: after a restart, stop it here."""
        self._pg_ctl("-m", "fast", "stop")

    def _pg_ctl(self, *args: str) -> None:
        from pgserver._commands import pg_ctl

        user = "pgserver" if os.geteuid() == 0 else None  # pgserver runs it as its own user
        pg_ctl(["-w", *args], pgdata=self.data_dir, user=user, timeout=60)
