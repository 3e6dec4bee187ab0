"""Delivery as the README states it: exactly once, unless the database fails between the SMTP
server's acceptance and the commit that marks the frauds alerted; then once more, with the
same Message-ID, marked as a possible resend (header and subject) and counted.

The failing commit is a real one: a deferred constraint trigger that raises at COMMIT on the
update marking the payments alerted, after the SMTP server (a real one on loopback) accepted.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import psycopg2
import psycopg2.extensions
import pytest

from fraud_devstack.stack.local_stack import LocalStack, Ports, StackOptions
from fraud_devstack.stack.mailcatcher import MailCatcher
from fraud_pipeline import clock
from fraud_pipeline.alerting.alerts import SmtpTarget, alert_pending
from fraud_pipeline.alerting.mail import POSSIBLE_RESEND_HEADER, resends_since
from fraud_pipeline.config import get_settings
from fraud_pipeline.net import free_port
from fraud_pipeline.storage.upsert import upsert_scored
from tests.support.factories import scored_payments

FAIL_AT_COMMIT = """
CREATE FUNCTION test_fail_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'database lost at commit'; END $$;
CREATE CONSTRAINT TRIGGER test_fail_commit AFTER UPDATE OF alerted_at ON payments_scored
DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_fail_commit();
"""
MENDED = "DROP TRIGGER test_fail_commit ON payments_scored; DROP FUNCTION test_fail_commit();"


def frauds(conn: psycopg2.extensions.connection, n: int = 3) -> None:
    frame = scored_payments(n, seed=29, start=clock.now() - timedelta(minutes=20))
    frame["is_fraud_pred"], frame["fraud_probability"], frame["threshold"] = True, 0.9, 0.356
    upsert_scored(conn, frame)


def execute(conn: psycopg2.extensions.connection, statement: str) -> None:
    with conn, conn.cursor() as cur:
        cur.execute(statement)


def test_a_send_whose_commit_failed_goes_again_marked_and_counted(conn, tmp_path: Path):
    frauds(conn)
    settings = get_settings()
    with MailCatcher(tmp_path / "mail", port=free_port()) as mail:
        target = SmtpTarget("127.0.0.1", mail.port)
        execute(conn, FAIL_AT_COMMIT)
        try:
            with pytest.raises(psycopg2.Error, match="database lost at commit"):
                alert_pending(conn, settings, target)
        finally:
            execute(conn, MENDED)
        second = alert_pending(conn, settings, target)
        third = alert_pending(conn, settings, target)
        first_copy, resend = mail.messages()
    assert second["emails"] == 1 and third["emails"] == 0  # once more, then never again
    assert second["possible_resends"] == 1
    assert resend["Message-ID"] == first_copy["Message-ID"]
    assert POSSIBLE_RESEND_HEADER not in first_copy
    assert resend[POSSIBLE_RESEND_HEADER] == "yes"
    assert resend["Subject"] == "[possible resend] " + first_copy["Subject"]
    with conn, conn.cursor() as cur:
        assert resends_since(cur, clock.now() - timedelta(hours=1)) == 1
    # Where an operator of `make run` looks: its status line.
    stack = LocalStack(StackOptions(tmp_path / "state", Ports(1, 2, 3, 4, 5, 6)))
    stack.fraud_db_url = conn.dsn
    assert "last 24 h: 1 emails sent again as possible resends" in stack.status_line()


def test_a_send_the_smtp_server_refused_is_not_a_resend(conn, tmp_path: Path):
    frauds(conn)
    settings = get_settings()
    mail = MailCatcher(tmp_path / "mail", port=free_port())
    target = SmtpTarget("127.0.0.1", mail.port)
    with pytest.raises(Exception, match="SMTP"):
        alert_pending(conn, settings, target)  # nobody listening: refused
    with mail:
        assert alert_pending(conn, settings, target)["emails"] == 1
        (message,) = mail.messages()
    assert POSSIBLE_RESEND_HEADER not in message
    assert not message["Subject"].startswith("[possible resend]")
    with conn, conn.cursor() as cur:
        assert resends_since(cur, clock.now() - timedelta(hours=1)) == 0
