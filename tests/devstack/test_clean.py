"""`make clean` drops this checkout's databases (application and Airflow) and only those (#15)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import psycopg2

from fraud_pipeline.config import REPO_ROOT
from fraud_pipeline.storage import db


def existing(url: str, names: list[str]) -> set[str]:
    with psycopg2.connect(db.with_database(url, "postgres")) as conn, conn.cursor() as cur:
        cur.execute("SELECT datname FROM pg_database WHERE datname = ANY(%s)", (names,))
        found = {row[0] for row in cur.fetchall()}
    conn.close()
    return found


def db_drop(env: dict[str, str]) -> str:
    """`fraud-pipeline db drop` (what `make clean` runs) with `env`: what it printed."""
    done = subprocess.run(
        [sys.executable, "-m", "fraud_pipeline.cli", "db", "drop"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.strip()


def test_make_clean_drops_the_projects_databases_and_only_those(database_url):
    suffix = uuid.uuid4().hex[:8]
    app, airflow, neighbour = (f"clean_{kind}_{suffix}" for kind in ("app", "airflow", "other"))
    urls = {name: db.with_database(database_url, name) for name in (app, airflow, neighbour)}
    for url in urls.values():
        db.ensure_database(url)
    try:
        env = {**os.environ, "DATABASE_URL": urls[app], "AIRFLOW_DATABASE_NAME": airflow}
        assert db_drop(env) == f"dropped {app}, {airflow}"
        names = [app, airflow, neighbour, db.database_name(database_url)]
        assert existing(database_url, names) == {neighbour, db.database_name(database_url)}
        assert db_drop(env) == "nothing to drop"  # not "dropped" what was not there
    finally:
        for url in urls.values():
            db.drop_database(url)
    clean = (REPO_ROOT / "Makefile").read_text().split("\nclean:", 1)[1].split("\n\n", 1)[0]
    assert "fraud-pipeline db drop" in clean  # what `make clean` runs
