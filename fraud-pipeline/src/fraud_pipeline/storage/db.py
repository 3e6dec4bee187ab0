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

import psycopg2
import psycopg2.extensions
from psycopg2 import sql
from sqlalchemy.engine import URL, make_url

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
    return render_url(parse_url(str(server.get_uri())))


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


# -- URLs: always parsed and rebuilt with a URL library, never by string surgery. A libpq URL may
# carry its host in the query (`postgresql://postgres:@/db?host=/tmp/...`, the embedded server's
# Unix socket), percent-encoded characters, or no host at all.
def parse_url(url: str) -> URL:
    """A `postgresql://` URL's parts (user, password, host, port, database, query)."""
    return make_url(url)


def render_url(url: URL) -> str:
    """A URL object back as the libpq URL string psycopg2 and the subprocesses receive."""
    return url.render_as_string(hide_password=False)


def with_database(url: str, name: str) -> str:
    """The same server URL (user, host or socket, port, options) pointing at another database."""
    return render_url(parse_url(url).set(database=name))


def as_user(url: str, user: str) -> str:
    """The same database URL logging in as another role, with no password (trust or ~/.pgpass).

    (`URL.set(password=None)` would keep the old password: None means "unchanged" there.)
    """
    return render_url(parse_url(url)._replace(username=user, password=None))


def database_name(url: str) -> str:
    """The database a URL names ('' when it names none)."""
    return parse_url(url).database or ""


def redact(url: str) -> str:
    """The URL with its password (if any) shown as ***: safe for logs and screens."""
    parsed = parse_url(url)
    if not parsed.password:  # none, or the embedded server's empty one: nothing to hide
        return render_url(parsed._replace(password=None))
    return parsed.render_as_string(hide_password=True)


def socket_dir(url: str) -> str | None:
    """The Unix-socket directory a URL connects through (its `host` query option), else None."""
    parsed = parse_url(url)
    host = parsed.query.get("host")
    if isinstance(host, tuple):
        host = host[0] if host else None
    if parsed.host or not host or not str(host).startswith("/"):
        return None
    return str(host)


def connect(
    url: str | None = None, *, timeout_s: int | None = None
) -> psycopg2.extensions.connection:
    """A connection; `timeout_s` bounds the wait for an unreachable server (libpq waits forever)."""
    options = {} if timeout_s is None else {"connect_timeout": timeout_s}
    return psycopg2.connect(url or database_url(), application_name="fraud_pipeline", **options)


@contextmanager
def transaction(url: str | None = None) -> Iterator[psycopg2.extensions.cursor]:
    """A cursor inside one transaction: committed on success, rolled back on any error."""
    conn = connect(url)
    try:
        with conn, conn.cursor() as cur:
            yield cur
    finally:
        conn.close()


@contextmanager
def server_lock(url: str, key: int) -> Iterator[None]:
    """Hold a server-wide advisory lock while the block runs.

    `pg_advisory_lock` is scoped to one database, but roles are the whole server's: taking the
    lock in the `postgres` database serialises work on shared objects (CREATE ROLE in
    migrations) across every database of the server.
    """
    admin = psycopg2.connect(with_database(url, "postgres"), application_name="fraud_pipeline")
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (key,))
        yield
    finally:
        admin.close()  # ends the session, which releases its advisory locks


@contextmanager
def _admin_cursor(url: str) -> Iterator[psycopg2.extensions.cursor]:
    """An autocommit cursor on the server's `postgres` database (CREATE/DROP DATABASE need it)."""
    admin = psycopg2.connect(with_database(url, "postgres"))
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            yield cur
    finally:
        admin.close()


def _exists(cur: psycopg2.extensions.cursor, name: str) -> bool:
    cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
    return cur.fetchone() is not None


def database_exists(url: str) -> bool:
    """Whether the server holds the database named in `url`."""
    with _admin_cursor(url) as cur:
        return _exists(cur, database_name(url))


def ensure_database(url: str) -> bool:
    """Create the database named in `url` if it does not exist; True when it was created."""
    name = database_name(url)
    with _admin_cursor(url) as cur:
        if _exists(cur, name):
            return False
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return True


def drop_database(url: str) -> bool:
    """Drop the database named in `url`, cutting off its sessions (tests, `make clean`); True
    when there was one to drop."""
    name = database_name(url)
    with _admin_cursor(url) as cur:
        existed = _exists(cur, name)
        cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    return existed


def drop_project_databases(settings: Settings | None = None) -> list[str]:
    """`make clean`: drop this checkout's databases (the application's and Airflow's metadata
    database, as the settings name them) and nothing else on the server; the names of those
    that existed.

    Without DATABASE_URL or a server on 5432 the only server is the embedded one, whose data
    directory `make clean` deletes: nothing to drop (and no server started to drop it).
    """
    settings = settings or get_settings()
    if not settings.database_url and not port_open("127.0.0.1", 5432):
        return []
    app = database_url(settings)
    urls = (app, with_database(app, settings.airflow_database_name))
    return [database_name(url) for url in urls if drop_database(url)]
