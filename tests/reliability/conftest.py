"""Reliability scenarios against the real services, and the table they print at the end.

Each scenario appends one `Outcome` (expected and got, per measure) to the session's table;
`pytest_terminal_summary` prints it, so `make reliability` shows one line per scenario.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest

from fraud_pipeline.config import Settings, get_settings
from fraud_pipeline.devstack.faults import FaultProxy
from fraud_pipeline.model.artifacts import load_model
from fraud_pipeline.serving.endpoint import EndpointClient
from fraud_pipeline.storage import db
from fraud_pipeline.storage.migrate import migrate
from tests.pipeline.conftest import Services, night_window, services  # noqa: F401 (fixture)
from tests.serving.conftest import runtime_for

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


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not TABLE:
        return
    terminalreporter.section("reliability scenarios (got / expected)")
    for line in format_table(TABLE):
        terminalreporter.write_line(line)
    terminalreporter.write_line("")
    terminalreporter.write_line("what the pipeline logged during the fault:")
    for row in TABLE:
        terminalreporter.write_line(f"  {row.scenario}: {row.message}")


@pytest.fixture
def outcomes() -> list[Outcome]:
    return TABLE


@pytest.fixture(scope="session")
def model():
    return load_model()


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

    def client(self, read_timeout: float = 2.0, attempts: int = 3) -> EndpointClient:
        """Short timeouts and few retries: a scenario's outage costs seconds, not minutes."""
        return EndpointClient(
            runtime_for(self.model_proxy.url, read_timeout),
            self.settings.sagemaker_endpoint_name,
            max_attempts=attempts,
            base_delay_s=0.01,
            max_delay_s=0.05,
            deadline_s=20,
        )


@pytest.fixture
def stack(services: Services, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:  # noqa: F811
    model_proxy = FaultProxy(services.settings.sagemaker_endpoint_url or "").start()
    payments_proxy = FaultProxy(services.settings.payments_api_url).start()
    monkeypatch.setenv("PAYMENTS_API_URL", payments_proxy.url)
    monkeypatch.setenv("SAGEMAKER_ENDPOINT_URL", model_proxy.url)
    monkeypatch.setenv("PAYMENTS_API_TIMEOUT_S", "2")
    get_settings.cache_clear()
    # A past night (frauds are mostly at night): 45 minutes, three 15-minute runs.
    _, end = night_window(0)
    try:
        yield Stack(
            services,
            model_proxy,
            payments_proxy,
            get_settings(),
            (end - pd.Timedelta("45min"), end),
        )
    finally:
        model_proxy.stop()
        payments_proxy.stop()
        get_settings.cache_clear()


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


@pytest.fixture(scope="session")
def throwaway_postgres() -> Iterator[ThrowawayPostgres]:
    """Never the shared server on :5432: restarting that one would break everyone's tests."""
    import pgserver

    data_dir = Path(tempfile.mkdtemp(prefix="fraud-restart-")) / "pgdata"
    server_url = db.start_embedded_server(data_dir, throwaway=True)
    url = db.with_database(server_url, "fraud_restart")
    migrate(url)
    server = ThrowawayPostgres(data_dir, url)
    try:
        yield server
    finally:
        server.stop()
        pgserver.get_server(data_dir).cleanup()  # deletes the data directory
