"""Shared fixtures: a real PostgreSQL database per test session, created and dropped here.

The server is `DATABASE_URL`'s, else 127.0.0.1:5432, else a throwaway embedded server
(pgserver) started for this session. The session database gets a unique name, every migration
is applied, and `DATABASE_URL` is pointed at it so that subprocesses (CLI, Airflow) use it too.

`--now 2026-03-29T23:30:00+02:00` freezes the business clock (FRAUD_NOW) for the whole session,
subprocesses included; `pytest -m clock --now ...` runs the tests that depend on "today".
The header names the user, the Python and the PostgreSQL the session runs against. With
FRAUD_FRESH_MACHINE=1 (CI), the run fails if 127.0.0.1:5432 is reachable at its start or end, or
if the session database is not on the embedded server (tests/fresh_machine.py)."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import psycopg2.extensions

from fraud_pipeline.net import port_open
from fraud_pipeline.storage import db
from tests.support import fresh_machine

APP_TABLES_KEEP = {"schema_migrations", "app_settings"}


@dataclass(frozen=True)
class SessionServer:
    url: str  # its maintenance database
    source: str  # "DATABASE_URL", "127.0.0.1:5432" or "embedded"

    @property
    def embedded(self) -> bool:
        return self.source == "embedded"


_server: SessionServer | None = None


session_urls: list[str] = []


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
    for url in session_urls:
        fresh_machine.check(url, embedded)


def describe_postgres() -> str:
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


def dump_text(conn: psycopg2.extensions.connection) -> str:
    """Every row of every table of the public schema, as text: what a scan for leaks reads."""
    from psycopg2 import sql

    with conn.cursor() as cur:
        cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        tables = [r[0] for r in cur.fetchall()]
        text = []
        for table in tables:
            cur.execute(
                sql.SQL("SELECT coalesce(string_agg(t::text, chr(10)), '') FROM {} t").format(
                    sql.Identifier(table)
                )
            )
            text.append(cur.fetchone()[0])
    return "\n".join(text)
