"""Where PostgreSQL is and how to talk to it.

Resolution order, the same for `make run`, `make test` and the CLI:
`DATABASE_URL` if set; else a server on 127.0.0.1:5432; else an embedded throwaway server
(the PyPI package `pgserver`, PostgreSQL 16) with its data under `.local/pgdata`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from fraud_pipeline.config import REPO_ROOT, Settings, get_settings
from fraud_pipeline.net import port_open

log = logging.getLogger(__name__)

LOCAL_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
EMBEDDED_DATA_DIR = REPO_ROOT / ".local" / "pgdata"

_embedded: object | None = None  # keeps the pgserver handle alive for the process


def start_embedded_server(data_dir: Path = EMBEDDED_DATA_DIR, *, throwaway: bool = False) -> str:
    """Start (or reuse) the embedded PostgreSQL server and return a URL to its `postgres` db.

    A throwaway server is stopped and deleted when this process exits (tests); otherwise it keeps
    running and keeps its data for the next `make run`.
    """
    global _embedded
    import pgserver  # imported late: only needed when no server is reachable

    data_dir.mkdir(parents=True, exist_ok=True)
    log.info("no PostgreSQL reachable: starting the embedded server in %s", data_dir)
    server = pgserver.get_server(data_dir, cleanup_mode="delete" if throwaway else None)
    _embedded = server
    return str(server.get_uri())


def server_url(settings: Settings | None = None) -> str:
    """URL of a PostgreSQL server to use (its maintenance database), following the order above."""
    settings = settings or get_settings()
    if settings.database_url:
        return with_database(settings.database_url, "postgres")
    if port_open("127.0.0.1", 5432):
        return LOCAL_SERVER_URL
    return start_embedded_server()


def database_url(settings: Settings | None = None) -> str:
    """URL of the application database (fraud_db unless DATABASE_URL names another)."""
    settings = settings or get_settings()
    if settings.database_url:
        return settings.database_url
    return with_database(server_url(settings), settings.database_name)


def with_database(url: str, name: str) -> str:
    """The same server URL pointing at another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def connect(url: str | None = None) -> psycopg2.extensions.connection:
    return psycopg2.connect(url or database_url(), application_name="fraud_pipeline")


@contextmanager
def transaction(url: str | None = None) -> Iterator[psycopg2.extensions.cursor]:
    """A cursor inside one transaction: committed on success, rolled back on any error."""
    conn = connect(url)
    try:
        with conn, conn.cursor() as cur:
            yield cur
    finally:
        conn.close()


def ensure_database(url: str) -> bool:
    """Create the database named in `url` if it does not exist; True when it was created."""
    name = urlsplit(url).path.lstrip("/")
    admin = psycopg2.connect(with_database(url, "postgres"))
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone():
                return False
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            return True
    finally:
        admin.close()


def drop_database(url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    admin = psycopg2.connect(with_database(url, "postgres"))
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
    finally:
        admin.close()
