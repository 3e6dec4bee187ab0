"""The morning report: a login in front of it, and a database role that can read the report only.

The role `fraud_report_reader` is what the report connects as (REPORT_DATABASE_URL). It may read
the report view and call the report functions; every table, every write, every DDL and the
server's files must be refused by PostgreSQL itself, whatever the report's code does. The role
`fraud_report_reviewer` (REVIEW_DATABASE_URL, the To review page) may do the same plus INSERT
verdicts into alert_reviews, and nothing more.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg2
import psycopg2.errors
import pytest
from streamlit.testing.v1 import AppTest

from fraud_pipeline.config import REPO_ROOT
from fraud_pipeline.report.queries import REPORT_ROLE, report_database_url
from fraud_pipeline.report.reviews import REVIEWER_ROLE, review_database_url
from fraud_pipeline.security.audit import SIGN_IN_FAILED
from fraud_pipeline.storage.upsert import upsert_scored
from tests.support.factories import scored_payments
from tests.support.report import PASSWORD, account

ALLOWED = [
    "SELECT count(*) FROM v_daily_fraud_report",
    "SELECT count(*) FROM fraud_report_for_day(current_date)",
    "SELECT * FROM fraud_report_freshness()",
    "SELECT fraud_business_tz()",
    "SELECT count(*) FROM fraud_review_queue(10)",
    "SELECT count(*) FROM fraud_review_card_payments('x', 7)",
    "SELECT count(*) FROM fraud_review_quality(current_date - 29, current_date)",
]
REFUSED = [
    "INSERT INTO payments_scored (trans_num) VALUES ('x')",
    "UPDATE payments_scored SET alerted_at = NULL",
    "DELETE FROM payments_scored",
    "TRUNCATE payments_scored",
    "COPY payments_scored TO STDOUT",
    "CREATE TABLE public.stolen (card text)",
    "DROP VIEW v_daily_fraud_report",
    "ALTER TABLE payments_scored ADD COLUMN x int",
    "GRANT SELECT ON payments_scored TO PUBLIC",
    "ALTER ROLE fraud_report_reader SUPERUSER",
    "SELECT pg_read_file('/etc/passwd')",
    "COPY (SELECT 1) TO '/tmp/fraud_report_reader_was_here'",
    "INSERT INTO alert_reviews (trans_num, verdict, analyst) VALUES ('x', 'false_alarm', 'me')",
    "UPDATE alert_reviews SET verdict = 'false_alarm'",
    "DELETE FROM alert_reviews",
    "TRUNCATE alert_reviews",
]
# The reviewer may add verdicts; everything else the reader may not do, it may not do either,
# and the trail is append-only: not even its own reviews can be changed, deleted or read back.
REVIEWER_REFUSED = [
    *(s for s in REFUSED if not s.startswith("INSERT INTO alert_reviews")),
    "SELECT * FROM alert_reviews",
    "INSERT INTO alert_reviews (trans_num, verdict, analyst) VALUES (%(t)s, 'false_alarm', 'me') "
    "RETURNING review_id",
    "ALTER ROLE fraud_report_reviewer SUPERUSER",
    "INSERT INTO payments_scored (trans_num) SELECT trans_num FROM fraud_review_queue(10)",
    "UPDATE payments_scored SET is_fraud = 1",
    "DROP TABLE alert_reviews",
    "ALTER TABLE alert_reviews DROP CONSTRAINT alert_reviews_verdict_check",
]
REFUSED_ERRORS = (
    psycopg2.errors.InsufficientPrivilege,
    psycopg2.errors.WrongObjectType,  # e.g. "cannot update view"
)


def logged_in(url: str, role: str) -> Iterator[psycopg2.extensions.connection]:
    """A session logged in as `role` (the test server trusts loopback logins)."""
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT current_user")
            assert cur.fetchone() == (role,)
        conn.rollback()
        yield conn
    finally:
        conn.close()


@pytest.fixture
def reader(database_url: str) -> Iterator[psycopg2.extensions.connection]:
    yield from logged_in(report_database_url(), REPORT_ROLE)


@pytest.fixture
def reviewer(database_url: str) -> Iterator[psycopg2.extensions.connection]:
    yield from logged_in(review_database_url(), REVIEWER_ROLE)


@pytest.fixture
def alert(conn: psycopg2.extensions.connection) -> str:
    """One flagged payment in the emptied database, to review."""
    frame = scored_payments(1)
    frame["is_fraud_pred"] = True
    upsert_scored(conn, frame)
    return str(frame["trans_num"].iloc[0])


def owner_tables(url: str) -> list[str]:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        tables = [row[0] for row in cur.fetchall()]
    conn.close()
    return tables


def test_the_reader_reads_the_report(reader):
    with reader.cursor() as cur:
        for statement in ALLOWED:
            cur.execute(statement)
            assert cur.fetchall() is not None
        cur.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'v_daily_fraud_report'"
        )
        columns = {row[0] for row in cur.fetchall()}
    assert "card_last4" in columns and not columns & {"card_token", "cc_num", "card_masked"}


def test_the_reader_reads_no_table(reader, database_url):
    tables = owner_tables(database_url)
    assert {"payments_scored", "payments_inbox", "payments_quarantine"} <= set(tables)
    for table in tables:
        with pytest.raises(psycopg2.errors.InsufficientPrivilege), reader.cursor() as cur:
            cur.execute(f'SELECT * FROM "{table}" LIMIT 1')
        reader.rollback()


@pytest.mark.parametrize("statement", REFUSED)
def test_the_reader_writes_nothing(reader, statement):
    with pytest.raises(REFUSED_ERRORS), reader.cursor() as cur:
        cur.execute(statement)
    reader.rollback()


def test_the_reviewer_adds_reviews_and_reads_the_report(reviewer, alert, database_url):
    with reviewer, reviewer.cursor() as cur:
        cur.execute(
            "INSERT INTO alert_reviews (trans_num, verdict, note, analyst) "
            "VALUES (%s, 'confirmed_fraud', 'called the cardholder', 'analyst')",
            (alert,),
        )
        for statement in ALLOWED:
            cur.execute(statement)
            assert cur.fetchall() is not None
        cur.execute("SELECT count(*) FROM fraud_review_queue(10)")
        assert cur.fetchone() == (0,)  # reviewed: off the queue
    with psycopg2.connect(database_url) as owner, owner.cursor() as cur:
        cur.execute("SELECT trans_num, verdict, analyst FROM v_alert_verdicts")
        assert cur.fetchall() == [(alert, "confirmed_fraud", "analyst")]
    owner.close()


@pytest.mark.parametrize("statement", REVIEWER_REFUSED)
def test_the_reviewer_writes_nothing_but_reviews(reviewer, alert, statement):
    with pytest.raises(REFUSED_ERRORS), reviewer.cursor() as cur:
        cur.execute(statement, {"t": alert})
    reviewer.rollback()


def test_the_reviewer_reads_no_table(reviewer, database_url):
    for table in owner_tables(database_url):
        with pytest.raises(psycopg2.errors.InsufficientPrivilege), reviewer.cursor() as cur:
            cur.execute(f'SELECT * FROM "{table}" LIMIT 1')
        reviewer.rollback()


@pytest.mark.usefixtures("report_env")
def test_the_report_shows_nothing_before_login():
    app = AppTest.from_file(str(REPO_ROOT / "fraud-dashboard" / "app.py"), default_timeout=60)
    app.run()
    assert not app.exception, app.exception
    assert [t.key for t in app.text_input] == ["login_user", "login_password"]
    assert not app.metric and not app.dataframe and not app.table
    app.text_input(key="login_user").input("analyst")
    app.text_input(key="login_password").input(PASSWORD + "x")
    app.button[0].click().run()
    assert not app.metric and not app.dataframe
    assert [e.value for e in app.error] == ["Wrong user or password."]


@pytest.mark.usefixtures("report_env")
def test_there_is_no_shared_login_not_even_before_the_first_account(clean_db, monkeypatch):
    """Issue #29: the old shared login (DASHBOARD_USER/DASHBOARD_PASSWORD, still set by an old
    deployment) signs nobody in, with no account yet or once one exists; each refusal audited."""
    monkeypatch.setenv("DASHBOARD_USER", "analyst")
    monkeypatch.setenv("DASHBOARD_PASSWORD", PASSWORD)
    with psycopg2.connect(clean_db) as conn, conn.cursor() as cur:
        cur.execute("SELECT coalesce(max(id), 0) FROM audit_log")
        before = cur.fetchone()[0]
    conn.close()
    for accounts in ("none", "one"):
        if accounts == "one":
            account(clean_db, "r.martin", "analyst")
        app = AppTest.from_file(str(REPO_ROOT / "fraud-dashboard" / "app.py"), default_timeout=60)
        app.run()
        app.text_input(key="login_user").input("analyst")
        app.text_input(key="login_password").input(PASSWORD)
        app.button[0].click().run()
        assert not app.exception, app.exception
        assert [e.value for e in app.error] == ["Wrong user or password."], accounts
        assert not app.metric and not app.dataframe
    with psycopg2.connect(clean_db) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT action FROM audit_log WHERE actor = 'analyst' AND id > %s ORDER BY id",
            (before,),
        )
        assert [row[0] for row in cur.fetchall()] == [SIGN_IN_FAILED, SIGN_IN_FAILED]
    conn.close()
