"""Shared fixtures: a real PostgreSQL database per test session, created and dropped here.

The server is `DATABASE_URL`'s, else 127.0.0.1:5432, else a throwaway embedded server
(pgserver) started for this session. The session database gets a unique name, every migration
is applied, and `DATABASE_URL` is pointed at it so that subprocesses (CLI, Airflow) use it too.

`--now 2026-03-29T23:30:00+02:00` freezes the business clock (FRAUD_NOW) for the whole session,
subprocesses included; `pytest -m clock --now ...` runs the tests that depend on "today".
The header names the user, the Python and the PostgreSQL the session runs against. With
FRAUD_FRESH_MACHINE=1 (CI), the run fails if 127.0.0.1:5432 is reachable at its start or end, or
if the session database is not on the embedded server (tests/fresh_machine.py).
"""

from __future__ import annotations

import os
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import psycopg2.extensions
import pytest

from fraud_pipeline import clock
from fraud_pipeline.config import get_settings
from fraud_pipeline.net import port_open
from fraud_pipeline.storage import db
from fraud_pipeline.storage.migrate import migrate
from tests import fresh_machine

APP_TABLES_KEEP = {"schema_migrations", "app_settings"}
_PREVIOUS_NOW = pytest.StashKey[str | None]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--now",
        metavar="INSTANT",
        help="freeze the business clock (FRAUD_NOW) at this ISO instant with offset, "
        "e.g. 2026-03-29T23:30:00+02:00",
    )


def pytest_configure(config: pytest.Config) -> None:
    instant = config.getoption("--now")
    if instant:
        try:
            clock.parse_instant(instant)
        except ValueError as error:
            raise pytest.UsageError(f"--now: {error}") from error
        config.stash[_PREVIOUS_NOW] = os.environ.get(clock.FRAUD_NOW)
        os.environ[clock.FRAUD_NOW] = instant


def pytest_unconfigure(config: pytest.Config) -> None:
    if _PREVIOUS_NOW in config.stash:
        previous = config.stash[_PREVIOUS_NOW]
        if previous is None:
            os.environ.pop(clock.FRAUD_NOW, None)
        else:
            os.environ[clock.FRAUD_NOW] = previous


def pytest_report_header(config: pytest.Config) -> str:
    return f"business clock: {clock.now().isoformat()} ({'frozen' if os.environ.get(clock.FRAUD_NOW) else 'real'})"


@dataclass(frozen=True)
class SessionServer:
    url: str  # its maintenance database
    source: str  # "DATABASE_URL", "127.0.0.1:5432" or "embedded"

    @property
    def embedded(self) -> bool:
        return self.source == "embedded"


_server: SessionServer | None = None
_session_urls: list[str] = []


def session_server() -> SessionServer:
    """The server this session uses, resolved once (the embedded one is started here)."""
    global _server
    if _server is None:
        configured = os.environ.get("DATABASE_URL")
        if configured:
            _server = SessionServer(db.with_database(configured, "postgres"), "DATABASE_URL")
        elif port_open("127.0.0.1", 5432):
            _server = SessionServer(db.LOCAL_SERVER_URL, "127.0.0.1:5432")
        else:
            data_dir = Path(tempfile.mkdtemp(prefix="fraud-pg-"))
            _server = SessionServer(db.start_embedded_server(data_dir, throwaway=True), "embedded")
    return _server


def check_fresh_machine() -> None:
    """In fresh-machine mode: nothing on 127.0.0.1:5432, every session database embedded."""
    if not fresh_machine.enabled():
        return
    embedded = _server.url if _server is not None and _server.embedded else None
    fresh_machine.check(_server.url if _server is not None else None, embedded)
    for url in _session_urls:
        fresh_machine.check(url, embedded)


def _describe_postgres() -> str:
    try:
        server = session_server()
        with psycopg2.connect(server.url, connect_timeout=10) as conn, conn.cursor() as cur:
            cur.execute("SHOW server_version")
            row = cur.fetchone()
        conn.close()
    except Exception as error:  # the header must not hide the tests' own, clearer failures
        return f"postgresql: unavailable ({type(error).__name__}: {error})".splitlines()[0]
    where = "embedded pgserver, throwaway" if server.embedded else f"from {server.source}"
    version = row[0] if row else "?"
    return f"postgresql: PostgreSQL {version} ({where}) at {db.redact(server.url)}"


def pytest_sessionstart(session: pytest.Session) -> None:
    try:
        check_fresh_machine()
    except fresh_machine.FreshMachineViolation as error:
        pytest.exit(f"fresh-machine guard: {error}", returncode=1)


def pytest_report_header(config: pytest.Config) -> list[str]:
    lines = [*fresh_machine.who_and_what(), _describe_postgres()]
    try:
        check_fresh_machine()  # the embedded server is known now: check it before any test
    except fresh_machine.FreshMachineViolation as error:
        pytest.exit(f"fresh-machine guard: {error}", returncode=1)
    return lines


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    try:
        check_fresh_machine()
    except fresh_machine.FreshMachineViolation as error:
        print(f"\nfresh-machine guard at session end: {error}", file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """URL of this session's own, fully migrated database (dropped at the end)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    url = db.with_database(session_server().url, f"fraud_test_{worker}_{uuid.uuid4().hex[:8]}")
    _session_urls.append(url)
    check_fresh_machine()
    previous = os.environ.get("DATABASE_URL")
    os.environ["DATABASE_URL"] = url
    get_settings.cache_clear()
    migrate(url)
    try:
        yield url
    finally:
        db.drop_database(url)
        if previous is None:
            os.environ.pop("DATABASE_URL", None)
        else:
            os.environ["DATABASE_URL"] = previous
        get_settings.cache_clear()


def truncate_app_tables(url: str) -> None:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND NOT (tablename = ANY(%s))",
            (list(APP_TABLES_KEEP),),
        )
        tables = [row[0] for row in cur.fetchall()]
        if tables:
            cur.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " CASCADE")
    conn.close()


@pytest.fixture
def clean_db(database_url: str) -> str:
    """The session database with every application table emptied before the test."""
    truncate_app_tables(database_url)
    return database_url


@pytest.fixture
def conn(clean_db: str) -> Iterator[psycopg2.extensions.connection]:
    connection = psycopg2.connect(clean_db)
    try:
        yield connection
    finally:
        connection.close()
