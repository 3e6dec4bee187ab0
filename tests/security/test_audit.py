"""The audit trail (PCI DSS 10.2, 10.3, 10.5): append-only, hash-chained, verified by
`fraud-pipeline audit verify`, which names the first row edited, inserted or removed directly
in the database; no application role can change it; retention is at least a year."""

from __future__ import annotations

import psycopg2
import pytest

from fraud_pipeline import cli
from fraud_pipeline.security import audit
from fraud_pipeline.storage import db


def trail(url: str, n: int = 5) -> None:
    with db.transaction(url) as cur:
        for i in range(n):
            audit.record(cur, f"analyst{i}", audit.VIEW_CARD, f"payment {i}", {"i": i}, "10.0.0.1")


def verify_cli(url: str, monkeypatch, capsys) -> tuple[int, str]:
    monkeypatch.setenv("DATABASE_URL", url)
    from fraud_pipeline.config import get_settings

    get_settings.cache_clear()
    try:
        code = cli.main(["audit", "verify"])
    finally:
        get_settings.cache_clear()
    out = capsys.readouterr()
    return code, out.out + out.err


def as_owner_without_triggers(url: str, statement: str) -> None:
    """What someone with the database's superuser could do: bypass the append-only trigger."""
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SET session_replication_role = replica")
        cur.execute(statement)
    conn.close()


def test_an_intact_trail_verifies(clean_db, monkeypatch, capsys):
    trail(clean_db)
    code, said = verify_cli(clean_db, monkeypatch, capsys)
    assert code == 0 and "5 rows, chain intact" in said, said


def test_a_row_edited_in_the_database_is_named(clean_db, monkeypatch, capsys):
    trail(clean_db)
    with db.transaction(clean_db) as cur:
        cur.execute("SELECT id FROM audit_log ORDER BY id OFFSET 2 LIMIT 1")
        third = cur.fetchone()[0]
    as_owner_without_triggers(
        clean_db, f"UPDATE audit_log SET actor = 'someone' WHERE id = {third}"
    )
    code, said = verify_cli(clean_db, monkeypatch, capsys)
    assert code == 1 and f"chain broken at row {third}: its contents" in said, said


def test_a_row_removed_from_the_middle_is_named(clean_db, monkeypatch, capsys):
    trail(clean_db)
    with db.transaction(clean_db) as cur:
        cur.execute("SELECT id FROM audit_log ORDER BY id")
        ids = [row[0] for row in cur.fetchall()]
    as_owner_without_triggers(clean_db, f"DELETE FROM audit_log WHERE id = {ids[1]}")
    code, said = verify_cli(clean_db, monkeypatch, capsys)
    assert code == 1 and f"chain broken at row {ids[2]}: its link" in said, said


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_log SET actor = 'x'",
        "DELETE FROM audit_log",
        "INSERT INTO audit_log (actor, action, prev_hash, row_hash) VALUES ('x', 'y', 'z', 'z')",
    ],
)
@pytest.mark.parametrize("role", ["fraud_report_reader", "fraud_report_reviewer"])
def test_no_application_role_can_change_the_trail(clean_db, role, statement):
    trail(clean_db, 1)
    conn = psycopg2.connect(db.as_user(clean_db, role))
    try:
        with pytest.raises(psycopg2.errors.InsufficientPrivilege), conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.close()


def test_the_owner_cannot_update_or_delete_either(clean_db):
    trail(clean_db, 1)
    for statement in ("UPDATE audit_log SET actor = 'x'", "DELETE FROM audit_log"):
        with (
            pytest.raises(psycopg2.errors.RaiseException, match="append-only"),
            db.transaction(clean_db) as cur,
        ):
            cur.execute(statement)


def test_an_application_role_appends_through_the_function_masked(clean_db):
    card = "4111 1111 1111 1111"
    conn = psycopg2.connect(db.as_user(clean_db, "fraud_report_reviewer"))
    with conn, conn.cursor() as cur:
        audit.record(cur, "alice", audit.EXPORT, f"card {card}", {"note": card})
    conn.close()
    with db.transaction(clean_db) as cur:
        (entry,) = audit.recent(cur)
        assert audit.verify(cur).ok
    assert entry.actor == "alice" and "1111 1111" not in entry.target + str(entry.detail)


RECHAIN = """
DO $$
DECLARE r record; prev text := repeat('0', 64);
BEGIN
    FOR r IN SELECT * FROM audit_log ORDER BY id LOOP
        UPDATE audit_log SET prev_hash = prev, row_hash = fraud_audit_digest(
            prev, r.id, r.at, r.actor, r.action, r.target, r.detail, r.source)
        WHERE id = r.id RETURNING row_hash INTO prev;
    END LOOP;
END $$
"""


def test_retention_keeps_a_year_and_the_chain_still_verifies(clean_db):
    trail(clean_db, 3)
    back_dated = (  # the two oldest rows as if written 400 days ago, the chain made anew
        "UPDATE audit_log SET at = at - interval '400 days' "
        "WHERE id IN (SELECT id FROM audit_log ORDER BY id LIMIT 2)"
    )
    as_owner_without_triggers(clean_db, back_dated + ";" + RECHAIN)
    with db.transaction(clean_db) as cur:
        assert audit.verify(cur).ok
        cur.execute("SAVEPOINT short")
        with pytest.raises(psycopg2.errors.RaiseException, match="at least 365"):
            audit.purge(cur, 30)
        cur.execute("ROLLBACK TO SAVEPOINT short")
        assert audit.purge(cur, 365) == 2
        assert audit.verify(cur).ok  # the oldest row kept anchors the chain
        assert [e.action for e in audit.recent(cur)] == ["audit.purge", audit.VIEW_CARD]
