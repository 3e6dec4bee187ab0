"""`make smoke`: the whole stack as `make run` starts it, end to end, then nothing left running.

Free ports, a temporary state directory, this session's database and a throwaway Airflow
metadata database; one hour of yesterday is back-filled (a whole day in `make run`). Passes when
Airflow shows a successful *scheduled* run of fraud_pipeline, the inbox has an email, yesterday's
report has rows, and Ctrl-C (SIGTERM) stops everything with no SIGKILL, no process left and no
Airflow run left running or queued (issue 15; the stop's duration is printed, never asserted:
speed is measured, not timed in tests), and no traceback in any log of the clean start.
Issue 14 on the same start: once the back-fill is done and a scheduled run has followed it, its
frauds older than ALERT_MAX_AGE_MIN went out in at most one catch-up digest, none of them in a
live alert email, and no payment was mailed twice. Issue 28: no payment of a live alert was
scored before its card's history was stored (no earlier payment of its card stored after it, but
one the payments API delivered late: README, Late payments).

Then issue 13's downtime proof on the same state and databases: the stack stays stopped until
the gap from the high-water mark to the restart spans MIN_GAP (2 min by default: whole minutes
that no run landed, which proves the catch-up as well as a longer stop; `FRAUD_SMOKE_GAP_S`
changes it), starts again, and within CATCH_UP_BUDGET_S of the restart
every payment the payments API serves for the gap is stored once, and each flagged one is
alerted in exactly one email, none left pending.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import psycopg2
import pytest
import requests

from fraud_devstack.stack.airflow_local import ADMIN_USER, AirflowClient
from fraud_devstack.stack.local_stack import STACK_ID_ENV
from fraud_devstack.stack.mailcatcher import read_maildir
from fraud_pipeline import clock
from fraud_pipeline.config import get_settings
from fraud_pipeline.security import users
from fraud_pipeline.storage import db, watermark
from tests.support.cards import stored_id
from tests.support.processes import Stack
from tests.support.runs import PAYMENT_LINE

BUDGET_S = 480.0  # a ceiling for a loaded machine: the loop ends as soon as all is there
# Issue 13: a stop of minutes: at least two whole minutes missed, a catch-up, not a late run.
MIN_GAP = timedelta(seconds=float(os.environ.get("FRAUD_SMOKE_GAP_S", "120")))
CATCH_UP_BUDGET_S = 180.0  # issue 13: the gap stored and alerted within 3 min of the restart
# An alert email's Date is stamped (to the second) just after its run took the frauds younger
# than ALERT_MAX_AGE_MIN: a fraud at the limit may look this much older in it.
DATE_SLACK = timedelta(minutes=1)
LIST_RUNS = ("dags", "list-runs", "fraud_pipeline")
FRAUD_DEV = str(Path(sys.executable).parent / "fraud-dev")  # the dev stack's CLI
# One hour of yesterday, no history days before it: yesterday stays incomplete, so the morning
# summary waits through the first stop (what the restart proves); `make run` loads a whole day
# and a week before it (README; backfill_window is tested in tests/code/test_clock.py).
STACK_ARGS = (
    "--free-ports",
    "--backfill-hours",
    "1",
    "--history-days",
    "0",
    "--status-every",
    "15",
)


def green_scheduled_run(client: AirflowClient) -> dict | None:
    runs = client.dag_runs("fraud_pipeline")
    return next((r for r in runs if r["run_type"] == "scheduled" and r["state"] == "success"), None)


def back_fill_followed(client: AirflowClient, state_dir: Path) -> bool:
    """The back-fill is done and a scheduled run started after it succeeded: that run's alert
    step ended the catch-up (its digest, if any old frauds, is in the inbox)."""
    marker = state_dir / "backfilled"  # written by the stack once the back-fill exited with 0
    if not marker.exists():
        return False
    done = datetime.fromtimestamp(marker.stat().st_mtime).astimezone()
    return any(
        run["run_type"] == "scheduled"
        and run["state"] == "success"
        and datetime.fromisoformat(run["start_date"]) > done
        for run in client.dag_runs("fraud_pipeline")
    )


def listed_payments(message: EmailMessage) -> list[str]:
    body = message.get_body(preferencelist=("plain",))
    return PAYMENT_LINE.findall(body.get_content() if body else "")


def old_frauds_pending(url: str) -> int:
    """Frauds older than ALERT_MAX_AGE_MIN neither alerted nor in a digest yet."""
    max_age = timedelta(minutes=get_settings().alert_max_age_min)
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM payments_scored "
            "WHERE is_fraud_pred AND alerted_at IS NULL AND trans_time < now() - %s",
            (max_age,),
        )
        (pending,) = cur.fetchone()
    conn.close()
    return int(pending)


def catch_up_outcome(url: str, maildir: str) -> dict[str, int]:
    """Issue 14 on the inbox of a first start: the digests, and what is wrong (all zero: none).

    Digests carry X-Fraud-Digest-Id (`alerting.digest.render`), live alerts X-Fraud-Alert-Id
    (`alerting.alerts.render`), each listing its payments; a payment's age is taken at the
    alert email's Date, against ALERT_MAX_AGE_MIN (`alerting.alerts.alert_pending`).
    """
    max_age = timedelta(minutes=get_settings().alert_max_age_min)
    messages = read_maildir(Path(maildir))
    alerts = [m for m in messages if m["X-Fraud-Alert-Id"]]
    live = {t: m["Date"].datetime for m in alerts for t in listed_payments(m)}
    mailed = Counter(t for m in alerts for t in listed_payments(m))
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT trans_num, trans_time FROM payments_scored WHERE trans_num = ANY(%s)",
            (sorted(live),),
        )
        made = dict(cur.fetchall())
        # Issue 28: a live alert's payment was scored on its card's whole history: no earlier
        # payment of the card (30 days: the features' look-back) was stored after it was.
        # A payment the API delivered late (late_payments) is the exception the README states:
        # it is stored when it comes, and the card's later payments are not scored again.
        cur.execute(
            "SELECT count(DISTINCT p.trans_num) FILTER (WHERE l.trans_num IS NULL), "
            "count(DISTINCT p.trans_num) FILTER (WHERE l.trans_num IS NOT NULL) "
            "FROM payments_scored p JOIN payments_scored h "
            "ON h.card_token = p.card_token AND h.trans_time < p.trans_time "
            "AND h.trans_time >= p.trans_time - interval '30 days' AND h.created_at > p.created_at "
            "LEFT JOIN late_payments l ON l.trans_num = h.trans_num "
            "WHERE p.trans_num = ANY(%s)",
            (sorted(live),),
        )
        before_history, before_late = cur.fetchone()
        print(f"smoke: {before_late} live alert(s) scored before a late payment of their card")
        cur.execute("SELECT trans_num FROM payments_scored WHERE alert_kind = 'digest'")
        mailed.update(t for (t,) in cur.fetchall())
    conn.close()
    return {
        "digests": sum(1 for m in messages if m["X-Fraud-Digest-Id"]),
        "old in a live alert": sum(
            1 for t, sent in live.items() if sent - made[t] > max_age + DATE_SLACK
        ),
        "not stored": len(set(live) - set(made)),
        "mailed twice": sum(1 for n in mailed.values() if n > 1),
        "old left pending": old_frauds_pending(url),
        "live alert scored before its card's history": int(before_history),
    }


def report_rows(url: str) -> int:
    yesterday = clock.yesterday()
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM fraud_report_for_day(%s)", (yesterday,))
        (count,) = cur.fetchone()
    conn.close()
    return int(count)


def airflow_client(state_dir: Path, state: dict) -> AirflowClient:
    password = json.loads(
        (state_dir / "airflow" / "simple_auth_manager_passwords.json").read_text()
    )[ADMIN_USER]
    return AirflowClient(state["urls"]["airflow"], ADMIN_USER, password)


def stop(stack: Stack, airflow_url: str) -> None:
    """Ctrl-C (SIGTERM): exit 0, no SIGKILL, no process, no run left running or queued."""
    began = time.monotonic()
    stack.stop()  # killed (and failing) if it does not stop in time
    stopping = stack.output[stack.output.rfind("stopping services") :]
    print(f"smoke: stopped in {time.monotonic() - began:.1f} s:\n{stopping}")
    assert stack.process.returncode == 0, stack.output[-3000:]
    assert stack.left_behind() == [], f"left behind ({STACK_ID_ENV})"
    assert "SIGKILL" not in stack.output, stack.output[-3000:]
    with psycopg2.connect(airflow_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT run_id, state FROM dag_run WHERE state IN ('running', 'queued')")
        unfinished = cur.fetchall()
    conn.close()
    assert unfinished == [], "runs left unfinished by the stop"


def high_water_mark(url: str) -> datetime:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        mark = watermark.read(cur)
    conn.close()
    assert mark is not None, "nothing landed before the stop"
    return mark


def served(api_url: str, start: datetime, end: datetime) -> set[str]:
    """Every payment the payments API serves for [start, end), all pages, its id as the
    pipeline stores it (digit runs that could be a card number masked at extract)."""
    found: set[str] = set()
    token = None
    while True:
        params = {"start": start.isoformat(), "end": end.isoformat(), "limit": 5000}
        if token:
            params["page_token"] = token
        page = requests.get(f"{api_url}/transactions", params=params, timeout=60).json()
        found |= {stored_id(payment["trans_num"]) for payment in page["payments"]}
        token = page["next_page_token"]
        if not token:
            return found


def gap_outcome(url: str, maildir: str, gap: set[str]) -> dict[str, int]:
    """What is still wrong with the gap's payments (all zero: done)."""
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT trans_num, is_fraud_pred, alerted_at IS NOT NULL FROM payments_scored "
            "WHERE trans_num = ANY(%s)",
            (sorted(gap),),
        )
        rows = cur.fetchall()
    conn.close()
    emails: Counter[str] = Counter()
    for message in read_maildir(Path(maildir)):
        body = message.get_body(preferencelist=("plain",))
        emails.update(PAYMENT_LINE.findall(body.get_content() if body else ""))
    stored = Counter(trans_num for trans_num, _, _ in rows)
    flagged = {trans_num for trans_num, fraud, _ in rows if fraud}
    return {
        "missing": len(gap - set(stored)),
        "stored twice": sum(1 for n in stored.values() if n > 1),
        "flagged": len(flagged),
        "pending": sum(1 for _, fraud, alerted in rows if fraud and not alerted),
        "not mailed": sum(1 for t in flagged if emails[t] == 0),
        "mailed twice": sum(1 for t in gap if emails[t] > 1),
    }


@pytest.mark.slow
@pytest.mark.airflow
@pytest.mark.timeout(2400)  # the budgets, the downtime, and stops that may take minutes
def test_make_run_end_to_end(clean_db, tmp_path, monkeypatch, launch_stack):
    # A fresh start: the worker's database emptied first (a `clock` test run before it on this
    # worker at 31 Dec 2026 left a high-water mark in the future, and the stop waited for it).
    database_url = clean_db
    airflow_db = f"airflow_smoke_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("AIRFLOW_DATABASE_NAME", airflow_db)
    state_dir = tmp_path / "state"
    airflow_url = db.with_database(database_url, airflow_db)
    try:
        first_start(launch_stack(state_dir, *STACK_ARGS), state_dir, airflow_url)
        mark = high_water_mark(database_url)
        # Stopped until the gap spans MIN_GAP (the stop itself and the minute in progress at
        # it already count): a wait on the condition, not a fixed sleep.
        time.sleep(max(0.0, (mark + MIN_GAP - clock.now()).total_seconds()) + 1.0)
        restart(launch_stack(state_dir, *STACK_ARGS), database_url, airflow_url, mark)
    finally:
        db.drop_database(airflow_url)


def first_start(stack: Stack, state_dir: Path, airflow_url: str) -> None:
    """`make run` from nothing to a green scheduled run, an email and a report; Ctrl-C."""
    started = time.monotonic()
    try:
        state = stack.wait_for_state(timeout=BUDGET_S)
        ready_s = time.monotonic() - started
        client = airflow_client(state_dir, state)
        green, emails, rows, followed = None, 0, 0, False
        while time.monotonic() - started < BUDGET_S:
            assert stack.process.poll() is None, "the stack stopped by itself"
            green = green or green_scheduled_run(client)
            emails = len(list(Path(state["maildir"]).glob("*.eml")))
            rows = report_rows(state["database_url"])
            followed = followed or back_fill_followed(client, state_dir)
            # The catch-up digest goes once the runs have caught up: wait for it (not a time).
            if (
                green
                and emails
                and rows
                and followed
                and not old_frauds_pending(state["database_url"])
            ):
                break
            time.sleep(5)
        client.close()
        done_s = time.monotonic() - started
        print(
            f"smoke: ready after {ready_s:.0f} s, green run + email + report + a run after "
            f"the back-fill after {done_s:.0f} s"
        )
        assert green, "no successful scheduled fraud_pipeline run"
        assert emails >= 1, "no email in the inbox"
        assert rows > 0, "yesterday's report is empty"
        assert followed, "no successful scheduled run after the back-fill (or it never ended)"
        # The on-call engineer's first tool works on the stack's own state (issue 15).
        listed = subprocess.run(
            [FRAUD_DEV, "airflow", "--state-dir", str(state_dir), "--", *LIST_RUNS],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert listed.returncode == 0, listed.stdout[-2000:] + listed.stderr[-2000:]
        assert green["dag_run_id"] in listed.stdout, listed.stdout[-3000:]
    finally:
        stop(stack, airflow_url)
    # The banner's report login is the one the report checks (issue 15).
    # Issue 29: the first start makes one admin and prints its one-time password.
    login = re.search(r"Morning report\s+\S+\s+login (admin) / (\S+)", stack.output)
    assert login, stack.output[:3000]
    with db.transaction(state["database_url"]) as cur:
        assert users.authenticate(cur, login[1], login[2]) is not None
    # Yesterday is back-filled for one hour only: never complete, so no morning summary for it.
    subjects = [str(m["Subject"]) for m in read_maildir(Path(state["maildir"]))]
    assert not [s for s in subjects if "Morning report" in s], subjects
    # Issue 14: the back-fill's old frauds in at most one catch-up email, live alerts live only.
    catch_up = catch_up_outcome(state["database_url"], state["maildir"])
    print(f"smoke: first start's inbox {subjects}: {catch_up}")
    assert catch_up["digests"] <= 1, subjects
    assert not {key: n for key, n in catch_up.items() if n and key != "digests"}, catch_up
    # A clean start leaves no traceback for a user grepping the logs to find (issue 15).
    assert tracebacks(state_dir) == {}


def tracebacks(state_dir: Path) -> dict[str, str]:
    """Every log file of the stack (services and Airflow tasks) holding a traceback: its tail."""
    found = {}
    for log in sorted(state_dir.rglob("*.log")):
        text = log.read_text(errors="replace")
        at = text.find("Traceback (most recent call last)")
        if at >= 0:
            found[str(log.relative_to(state_dir))] = text[at : at + 2000]
    return found


def restart(stack: Stack, url: str, airflow_url: str, mark: datetime) -> None:
    """The same state after the downtime: the gap [mark, restart) caught up within the budget."""
    restarted_at, started = clock.now(), time.monotonic()
    try:
        state = stack.wait_for_state(timeout=CATCH_UP_BUDGET_S)
        assert restarted_at - mark >= MIN_GAP, f"the stop spans less than {MIN_GAP}"
        gap = served(state["urls"]["payments"], mark, restarted_at)
        assert gap, f"the payments API serves nothing for the gap {mark} -> {restarted_at}"
        outcome: dict[str, int] = {}
        while time.monotonic() - started < CATCH_UP_BUDGET_S:
            assert stack.process.poll() is None, "the stack stopped by itself"
            outcome = gap_outcome(url, state["maildir"], gap)
            if not any(n for key, n in outcome.items() if key != "flagged"):
                break
            time.sleep(5)
        print(
            f"smoke: gap {clock.local(mark):%H:%M:%S} -> {restarted_at:%H:%M:%S} ({len(gap)} payments) "
            f"after {time.monotonic() - started:.0f} s: {outcome}"
        )
        problems = {key: n for key, n in outcome.items() if n and key != "flagged"}
        assert not problems, f"the gap's payments {problems} {CATCH_UP_BUDGET_S:.0f} s after"
    finally:
        stop(stack, airflow_url)
    # The first stop interrupted the morning summary waiting for yesterday (one hour of it
    # back-filled): the restart runs it again rather than losing that day's summary.
    rerun = r"fraud_daily_report \S+: interrupted at the last stop, rerun"
    assert re.search(rerun, stack.output), stack.output[:4000]
