"""Running a scenario's pipeline runs and counting what came of them.

A run that fails is a failed Airflow task: its exception goes to the task log (logged here the
way Airflow's task runner logs it, on the `airflow.task` logger) and the next run goes on. The
outcome is counted from the database and from the emails the SMTP server received, and compared
with what the payments and the model say should happen.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from typing import Any

import psycopg2
import requests
from psycopg2 import sql

from fraud_devstack.stack.generate import payments_between
from fraud_devstack.stack.mailcatcher import read_maildir
from fraud_pipeline.ingest.payments import to_payments
from fraud_pipeline.model.artifacts import Model
from fraud_pipeline.pipeline.steps import run_interval
from fraud_pipeline.serving.endpoint import EndpointClient
from tests.support.cards import (
    PLANTED,
    broad_scan,
    database_places,
    log_places,
    mail_places,
    scan,
    text_column_places,
)
from tests.support.reliability import Outcome, Stack

RUNS = 3
PAYMENT_LINE = re.compile(r"^\s*payment (\S+)", re.MULTILINE)
TASK_LOG = logging.getLogger("airflow.task")
FLAGGED_OR_ALERTED = (
    "SELECT trans_num FROM payments_scored WHERE is_fraud_pred OR alerted_at IS NOT NULL"
)


def window_payments(stack: Stack) -> Any:
    """The raw payments the generator serves for the stack's window (card numbers included)."""
    start, end = stack.window
    return payments_between(start, end, seed=stack.seed, rate_per_min=stack.rate_per_min)


def expected_outcome(stack: Stack, model: Model) -> tuple[set[str], set[str]]:
    """(every payment of the window, those the model flags), computed in-process."""
    payments = to_payments(window_payments(stack))
    flagged = model.predict(model.features(payments)) >= model.threshold
    return set(payments["trans_num"]), set(payments.loc[flagged, "trans_num"])


def alerted(stack: Stack) -> Counter[str]:
    """How many emails named each payment."""
    counts: Counter[str] = Counter()
    for message in read_maildir(stack.services.mail.maildir):
        body = message.get_body(preferencelist=("plain",))
        assert body is not None
        counts.update(PAYMENT_LINE.findall(body.get_content()))
    return counts


def intervals(stack: Stack, runs: int = RUNS) -> list[tuple[Any, Any]]:
    start, end = stack.window
    step = (end - start) / runs
    return [
        ((start + i * step).to_pydatetime(), (start + (i + 1) * step).to_pydatetime())
        for i in range(runs)
    ]


def warm_up(stack: Stack) -> None:
    """The generator's first window is slow to serve; a run must not fail on it by accident."""
    start, end = intervals(stack)[0]
    url = f"{stack.settings.payments_api_url}/transactions"
    params = {"start": start.isoformat(), "end": end.isoformat()}
    requests.get(url, params=params, timeout=120).raise_for_status()


def run_one(
    stack: Stack, url: str, start: Any, end: Any, run_id: str, client: EndpointClient
) -> str | None:
    """One run on its own connection (as a task has); its error as the task log says it."""
    conn = psycopg2.connect(url)
    try:
        run_interval(conn, start, end, run_id=run_id, client=client, settings=stack.settings)
    except Exception as error:  # a failed task: Airflow logs it and retries later
        TASK_LOG.error("Task failed with exception", exc_info=True)
        return f"{type(error).__name__}: {error}"
    finally:
        conn.close()
    return None


def run_all(
    stack: Stack, url: str, client: EndpointClient | None = None, prefix: str = "scheduled"
) -> list[str]:
    """The window's runs, one after the other; the errors of those that failed.

    One client for all (boto3 clients are thread-safe, creating them is not).
    """
    client = client or stack.client()
    errors = [
        run_one(stack, url, start, end, f"{prefix}__{number}", client)
        for number, (start, end) in enumerate(intervals(stack))
    ]
    return [error for error in errors if error]


def dag_runs(stack: Stack, url: str) -> None:
    """The window through the DAG's tasks (`run_interval`: ingest -> score_and_load -> alert ->
    shadow, the functions the DAG, the back-fills and the catch-ups share), every run green."""
    assert run_all(stack, url) == []


def count(url: str, query: str) -> int:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(query)
        row = cur.fetchone()
    conn.close()
    assert row is not None
    return int(row[0])


def stored_trans_nums(url: str, query: str = "SELECT trans_num FROM payments_scored") -> list[str]:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(query)
        rows = [str(row[0]) for row in cur.fetchall()]
    conn.close()
    return rows


def outcome(
    name: str,
    stack: Stack,
    model: Model,
    url: str,
    message: str,
    *,
    quarantined: int = 0,
    frauds_from_db: bool = False,
    set_aside: frozenset[str] = frozenset(),
) -> Outcome:
    """Got vs expected for the window: every payment stored once, every fraud alerted once.

    The frauds to alert are the model's in-process verdicts, or, when runs overlapped (a later
    interval may be scored before an earlier one is stored, so with less card history), the
    payments the pipeline flagged in the database, plus those it alerted when flagged by the run
    with less history and un-flagged by the later re-score (an alert sent is not withdrawn).
    `set_aside`: payments the scenario makes unstorable; they are expected in quarantine instead.
    """
    served, frauds = expected_outcome(stack, model)
    payments, frauds = served - set_aside, frauds - set_aside  # quarantined on purpose
    if frauds_from_db:
        frauds = set(stored_trans_nums(url, FLAGGED_OR_ALERTED))
    stored = stored_trans_nums(url)
    emails = alerted(stack)
    got = {
        "payments": len(served),
        "stored": len(stored),
        "duplicates": len(stored) - len(set(stored)) + len(set(stored) - payments),
        "lost": len(payments - set(stored)),
        "alerts": len(emails),
        "dup_alerts": sum(n - 1 for n in emails.values()),
        "quarantined": count(url, "SELECT count(*) FROM payments_quarantine"),
    }
    expected = {
        "payments": len(served),
        "stored": len(payments),
        "duplicates": 0,
        "lost": 0,
        "alerts": len(frauds),
        "dup_alerts": 0,
        "quarantined": quarantined,
    }
    if set(emails) != frauds:
        got["alerts"] = -abs(len(set(emails) ^ frauds))  # the wrong frauds were alerted
    return Outcome(name, expected, got, message)


def log_text(records: list[logging.LogRecord]) -> str:
    """What the task log shows: every message, with its exception and the ones it chains."""
    lines = []
    for record in records:
        lines.append(f"{record.levelname} {record.name}: {record.getMessage()}")
        error = record.exc_info[1] if record.exc_info else None
        while error is not None:  # the traceback shows the chain: "During handling of ..."
            lines.append(f"    {type(error).__name__}: {error}")
            error = error.__cause__ or error.__context__
    return "\n".join(lines)


def select(url: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(query)
        rows = cur.fetchall()
    conn.close()
    return rows


def table_dump(url: str, table: str = "payments_scored") -> list[tuple[Any, ...]]:
    """Every column of every row, in key order (scored_at, updated_at, alert bookkeeping...)."""
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(sql.SQL("SELECT * FROM {} t ORDER BY t::text").format(sql.Identifier(table)))
        rows = cur.fetchall()
    conn.close()
    return rows


def card_leaks(stack: Stack | None, urls: list[str], records: list[logging.LogRecord]) -> list[str]:
    """Where an input card number (the window's `cc_num`s, the planted ones) was left (a table
    of the databases, a log record, a mail), and where anything the masking rule would mask
    was left (a log record, a mail, a text column: `broad_scan`)."""
    numbers = set(PLANTED)
    places = log_places(records)
    if stack is not None:
        numbers |= set(window_payments(stack)["cc_num"].astype(str))
        places += mail_places(stack.services.mail.maildir)
    # The raw mail files hold MIME boundaries of 19 random digits: their decoded parts instead.
    broad = [(where, text) for where, text in places if not where.endswith(".eml")]
    for url in urls:
        places += database_places(url)
        broad += text_column_places(url)
    return scan(numbers, places) + broad_scan(broad)
