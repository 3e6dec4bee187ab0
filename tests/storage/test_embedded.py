"""The embedded default: with no server reachable, the project starts its own PostgreSQL."""

from __future__ import annotations

import psycopg2

from fraud_pipeline.storage import db
from fraud_pipeline.storage.migrate import migrate
from fraud_pipeline.storage.upsert import upsert_scored
from tests.support.factories import scored_payments


def test_embedded_server_runs_migrations_and_upserts(tmp_path):
    server = db.start_embedded_server(tmp_path / "pgdata", throwaway=True)
    url = db.with_database(server, "fraud_db")
    assert [m.version for m in migrate(url)][:2] == [1, 2]
    conn = psycopg2.connect(url)
    try:
        assert upsert_scored(conn, scored_payments(50)).inserted == 50
        with conn.cursor() as cur:
            cur.execute("SELECT version() LIKE 'PostgreSQL 16%', count(*) FROM payments_scored")
            assert cur.fetchone() == (True, 50)
    finally:
        conn.close()
