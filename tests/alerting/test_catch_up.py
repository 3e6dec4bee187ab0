"""Catch-ups do not flood analysts: frauds found late go into one digest, each still mailed once.

A back-fill (`make run`'s first start of the day) or the DAG catching up after downtime finds
frauds in payments made long ago. Pending frauds older than ALERT_MAX_AGE_MIN are summarised in
one digest at the end of the catch-up; live ones are alerted as always, one email per run.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pandas as pd
import psycopg2
import psycopg2.extensions
import pytest

from fraud_devstack.stack.mailcatcher import MailCatcher
from fraud_pipeline import clock
from fraud_pipeline.alerting.alerts import AlertError, SmtpTarget, alert_pending
from fraud_pipeline.alerting.digest import catching_up
from fraud_pipeline.config import Settings, get_settings
from fraud_pipeline.net import free_port
from fraud_pipeline.pipeline import steps
from fraud_pipeline.pipeline.backfill import backfill
from fraud_pipeline.storage import watermark
from fraud_pipeline.storage.upsert import upsert_scored
from tests.support.factories import scored_payments
from tests.support.servers import Services, night_window

PAYMENT_LINE = re.compile(r"^\s*payment (\S+)", re.MULTILINE)


@pytest.fixture
def max_age_1h(monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """The default ALERT_MAX_AGE_MIN (the test fixtures replay past windows as live)."""
    monkeypatch.setenv("ALERT_MAX_AGE_MIN", "60")
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


@pytest.fixture
def back_fill_env(
    services: Services, max_age_1h: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The generator's first window of a night is slow to serve: the back-fill waits for it."""
    monkeypatch.setenv("PAYMENTS_API_TIMEOUT_S", "120")
    get_settings.cache_clear()


def _split(messages: list[EmailMessage]) -> tuple[list[EmailMessage], list[EmailMessage]]:
    """(alert emails, digest emails)."""
    alerts = [m for m in messages if m["X-Fraud-Alert-Id"]]
    digests = [m for m in messages if m["X-Fraud-Digest-Id"]]
    assert len(alerts) + len(digests) == len(messages)
    return alerts, digests


def _alerted(messages: list[EmailMessage]) -> list[str]:
    return [
        trans_num
        for message in messages
        for trans_num in PAYMENT_LINE.findall(message.get_body(("plain",)).get_content())
    ]


def _flagged(url: str, since: datetime) -> dict[str, tuple[set[str], float]]:
    """The stored frauds, old and live (against `since`), with their total amount."""
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT trans_time < %s, trans_num, amt::float8, alert_kind FROM payments_scored "
            "WHERE is_fraud_pred",
            (since,),
        )
        rows = cur.fetchall()
    conn.close()
    out: dict[str, tuple[set[str], float]] = {}
    for kind, old in (("digest", True), ("alert", False)):
        mine = [r for r in rows if r[0] is old]
        assert {r[3] for r in mine} <= {kind}, f"{kind}: {sorted({r[3] for r in mine})}"
        out[kind] = ({r[1] for r in mine}, sum(r[2] for r in mine))
    return out


def _night() -> tuple[datetime, datetime]:
    """Yesterday 00:00-02:00 (business time), frozen at 02:00: its first hour is a catch-up."""
    _, now = night_window(0)
    return (now - pd.Timedelta(hours=2)).to_pydatetime(), now.to_pydatetime()


def test_the_first_start_back_fill_sends_one_digest_and_live_alerts(
    services: Services, clean_db: str, back_fill_env: None
) -> None:
    """`make run`: a back-fill without alerts, then the DAG's alert step: one digest, once."""
    start, now = _night()
    with clock.frozen(now):
        backfill(pd.Timestamp(start), pd.Timestamp(now), pd.Timedelta("30min"), alerts=False)
        assert services.mail.messages() == []
        conn = psycopg2.connect(clean_db)
        try:
            first = steps.alert(conn)  # the DAG's next alert step
            again = steps.alert(conn)
        finally:
            conn.close()
        # The back-fill retried: nothing is stored, alerted or summarised again.
        backfill(pd.Timestamp(start), pd.Timestamp(now), pd.Timedelta("30min"), alerts=True)
    frauds = _flagged(clean_db, now - timedelta(hours=1))
    old, old_amount = frauds["digest"]
    live, _ = frauds["alert"]
    assert len(old) > 10 and len(live) > 10, (len(old), len(live))
    alerts, digests = _split(services.mail.messages())
    assert len(digests) == 1 and len(alerts) == 1  # live: one email for the run
    assert sorted(_alerted(alerts)) == sorted(live)  # each live fraud alerted once
    assert _alerted(digests) == []  # the digest lists no payment as a new alert
    assert first["frauds_summarised"] == len(old) and first["frauds_alerted"] == len(live)
    assert again["frauds_summarised"] == again["frauds_alerted"] == 0
    digest = digests[0]
    text = digest.get_body(("plain",)).get_content()
    money = f"${old_amount:,.2f}"
    assert f"Catch-up: {len(old):,} suspected frauds ({money})" in text
    assert digest["Subject"].startswith(f"[fraud] Catch-up: {len(old):,} frauds ({money})")
    assert digest["Date"] and digest["Message-ID"].startswith("<fraud-digest-")
    assert f"?day={clock.business_day(start).isoformat()}" in text  # that day's report


def test_a_back_fill_with_alerts_sends_live_ones_per_chunk_and_one_digest_at_its_end(
    services: Services, clean_db: str, back_fill_env: None
) -> None:
    start, now = _night()
    with clock.frozen(now):
        for _ in range(2):  # the second run is a retry: nothing new
            backfill(pd.Timestamp(start), pd.Timestamp(now), pd.Timedelta("30min"), alerts=True)
    frauds = _flagged(clean_db, now - timedelta(hours=1))
    alerts, digests = _split(services.mail.messages())
    assert len(digests) == 1
    assert len(alerts) == 2  # the two live chunks (01:00-01:30, 01:30-02:00), one email each
    assert sorted(_alerted(alerts)) == sorted(frauds["alert"][0])
    assert f"Catch-up: {len(frauds['digest'][0]):,} suspected frauds" in (
        digests[0].get_body(("plain",)).get_content()
    )


@pytest.fixture
def late_and_live(conn: psycopg2.extensions.connection) -> tuple[set[str], set[str]]:
    """Stored frauds: 30 payments of 3-4 h ago and 10 of the last 10 minutes (half flagged)."""
    now = clock.now()
    old = scored_payments(30, start=now - timedelta(hours=4), seed=1, step_s=120)
    live = scored_payments(10, start=now - timedelta(minutes=10), seed=2, step_s=30)
    upsert_scored(conn, pd.concat([old, live], ignore_index=True))
    flagged = lambda frame: set(frame.loc[frame["is_fraud_pred"], "trans_num"])  # noqa: E731
    assert flagged(old) and flagged(live)
    return flagged(old), flagged(live)


def _kinds(conn: psycopg2.extensions.connection) -> dict[str | None, int]:
    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT alert_kind, count(*) FROM payments_scored WHERE is_fraud_pred GROUP BY 1"
        )
        return dict(cur.fetchall())


def test_a_digest_refused_by_smtp_is_sent_once_it_is_back(
    conn: psycopg2.extensions.connection,
    late_and_live: tuple[set[str], set[str]],
    tmp_path: Path,
    max_age_1h: Settings,
) -> None:
    old, live = late_and_live
    mail = MailCatcher(tmp_path / "mail", port=free_port()).start()
    target = SmtpTarget("127.0.0.1", mail.port)
    try:
        assert alert_pending(conn, max_age_1h, target, old="hold")["frauds_alerted"] == len(live)
        mail.stop()  # SMTP goes down before the catch-up's digest
        with pytest.raises(AlertError):
            alert_pending(conn, max_age_1h, target, old="now")
        assert _kinds(conn) == {"alert": len(live), None: len(old)}  # still pending
        mail.start()
        sent = alert_pending(conn, max_age_1h, target, old="now")  # the retry
        again = alert_pending(conn, max_age_1h, target, old="now")
    finally:
        mail.stop()
    assert sent["frauds_summarised"] == len(old) and sent["frauds_alerted"] == 0
    assert again["frauds_summarised"] == again["frauds_alerted"] == 0
    assert _kinds(conn) == {"alert": len(live), "digest": len(old)}
    alerts, digests = _split(mail.messages())
    assert len(alerts) == 1 and len(digests) == 1


def test_no_digest_while_a_back_fill_runs_or_the_dag_is_behind(
    conn: psycopg2.extensions.connection,
    clean_db: str,
    late_and_live: tuple[set[str], set[str]],
    tmp_path: Path,
    max_age_1h: Settings,
) -> None:
    old, live = late_and_live
    now = clock.now()
    other = psycopg2.connect(clean_db)  # a back-fill, in another process
    with MailCatcher(tmp_path / "mail", port=free_port()) as mail:
        target = SmtpTarget("127.0.0.1", mail.port)
        with catching_up(other):
            during = alert_pending(conn, max_age_1h, target)  # the DAG's alert step
            other_ends = alert_pending(conn, max_age_1h, target, old="now")  # another back-fill
        other.close()
        with conn, conn.cursor() as cur:  # the DAG itself is 3 hours behind
            watermark.advance(cur, now - timedelta(hours=4), now - timedelta(hours=3))
        behind = alert_pending(conn, max_age_1h, target)
        with conn, conn.cursor() as cur:  # ... and has caught up
            watermark.advance(cur, now - timedelta(hours=3), now)
        caught_up = alert_pending(conn, max_age_1h, target)
        alerts, digests = _split(mail.messages())
    assert during["frauds_alerted"] == len(live) and during["digests"] == 0
    assert other_ends["digests"] == behind["digests"] == 0
    assert caught_up["frauds_summarised"] == len(old)
    assert len(alerts) == 1 and len(digests) == 1
