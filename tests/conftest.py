"""Shared fixtures: a real PostgreSQL database per test session, created and dropped here.

The server is `DATABASE_URL`'s, else 127.0.0.1:5432, else a throwaway embedded server
(pgserver) started for this session. The session database gets a unique name, every migration
is applied, and `DATABASE_URL` is pointed at it so that subprocesses (CLI, Airflow) use it too.

`--now 2026-03-29T23:30:00+02:00` freezes the business clock (FRAUD_NOW) for the whole session,
subprocesses included; `pytest -m clock --now ...` runs the tests that depend on "today".
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import psycopg2.extensions
import pytest

from fraud_pipeline import clock
from fraud_pipeline.config import get_settings
from fraud_pipeline.net import port_open
from fraud_pipeline.storage import db
from fraud_pipeline.storage.migrate import migrate

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


def _server_url() -> str:
    configured = os.environ.get("DATABASE_URL")
    if configured:
        return db.with_database(configured, "postgres")
    if port_open("127.0.0.1", 5432):
        return db.LOCAL_SERVER_URL
    return db.start_embedded_server(Path(tempfile.mkdtemp(prefix="fraud-pg-")), throwaway=True)


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """URL of this session's own, fully migrated database (dropped at the end)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    url = db.with_database(_server_url(), f"fraud_test_{worker}_{uuid.uuid4().hex[:8]}")
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
