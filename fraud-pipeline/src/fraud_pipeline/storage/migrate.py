"""Versioned SQL migrations from `sql/migrations/NNN_name.sql`, applied once each, in order.

Applied versions are recorded in `schema_migrations` with the file's SHA-256; a migration whose
file changed after it was applied is refused (edit history by adding a new file, never in place).
An advisory lock makes concurrent `db migrate` calls safe, also on different databases of one
server (the roles that migrations create are the server's). The schema only: the first champion
is the registry's business (`registry.versions.set_up_database`, what `db migrate` runs).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import psycopg2.extensions

from fraud_pipeline.config import REPO_ROOT, get_settings
from fraud_pipeline.storage.db import (
    connect,
    database_name,
    database_url,
    ensure_database,
    server_lock,
)

log = logging.getLogger(__name__)

MIGRATIONS_DIR = REPO_ROOT / "sql" / "migrations"
_LOCK_ID = 0x46524144  # "FRAD": serialises migrations across processes


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        number, _, name = path.stem.partition("_")
        if not number.isdigit():
            raise ValueError(f"migration file {path.name} must start with a version number")
        migrations.append(Migration(int(number), name, path.read_text()))
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise ValueError(f"duplicate migration versions in {directory}")
    return migrations


def migrate(url: str | None = None, directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Create the database if needed, apply pending migrations; return those applied now."""
    url = url or database_url()
    # The lock first: two services starting on a fresh server would both find the database
    # missing and one CREATE DATABASE would fail.
    with server_lock(url, _LOCK_ID):
        if ensure_database(url):
            log.info("created database %s", database_name(url))
        conn = connect(url)
        try:
            with conn, conn.cursor() as cur:
                return _apply(cur, discover(directory))
        finally:
            conn.close()


def _apply(cur: psycopg2.extensions.cursor, migrations: list[Migration]) -> list[Migration]:
    """Apply the migrations not yet recorded (in one transaction), refusing an edited one;
    those applied now."""
    cur.execute(
        """CREATE TABLE IF NOT EXISTS schema_migrations (
               version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
               applied_at timestamptz NOT NULL DEFAULT now())"""
    )
    cur.execute("SELECT version, checksum FROM schema_migrations")
    done = dict(cur.fetchall())
    applied_now = []
    for migration in migrations:
        if migration.version in done:
            if done[migration.version] != migration.checksum:
                raise RuntimeError(
                    f"migration {migration.version}_{migration.name} changed after it "
                    "was applied; add a new migration instead of editing it"
                )
            continue
        log.info("applying migration %03d_%s", migration.version, migration.name)
        cur.execute(migration.sql)
        cur.execute(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
            (migration.version, migration.name, migration.checksum),
        )
        applied_now.append(migration)
    cur.execute(
        """INSERT INTO app_settings (key, value) VALUES ('business_tz', %s)
           ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value
           WHERE app_settings.value IS DISTINCT FROM EXCLUDED.value""",
        (get_settings().business_tz,),
    )
    return applied_now
