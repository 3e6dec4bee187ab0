"""PostgreSQL restarts in the middle of a load: the load's transaction is lost, nothing else.

The server is a throwaway one of this session's own (never the shared :5432). The load is caught
mid-transaction deterministically: another session holds a SHARE lock on payments_scored, so the
load waits at its merge (its batch read, its rows staged); the server is then restarted with
`-m immediate`, as in a crash. The retry and the next runs must store and alert everything once.
"""

from __future__ import annotations

import threading
import time

import psycopg2

from tests.support.database import truncate_app_tables
from tests.support.runs import (
    TASK_LOG,
    count,
    intervals,
    log_text,
    outcome,
    run_all,
    run_one,
    warm_up,
)

WAITING_LOAD = """
SELECT count(*) FROM pg_stat_activity
WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO payments_scored%'
"""


def wait_for_blocked_load(url: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    conn = psycopg2.connect(url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            while time.monotonic() < deadline:
                cur.execute(WAITING_LOAD)
                row = cur.fetchone()
                if row and row[0]:
                    return
                time.sleep(0.05)
    finally:
        conn.close()
    raise AssertionError("the load never reached its merge")


def test_postgres_restarts_in_the_middle_of_a_load(
    stack, model, outcomes, throwaway_postgres, caplog
):
    url = throwaway_postgres.url
    truncate_app_tables(url)
    warm_up(stack)
    blocker = psycopg2.connect(url)
    with blocker.cursor() as cur:
        cur.execute("LOCK TABLE payments_scored IN SHARE MODE")  # writers wait, readers do not
    start, end = intervals(stack)[0]
    errors: list[str | None] = []
    run = threading.Thread(
        target=lambda: errors.append(
            run_one(stack, url, start, end, "scheduled__0", stack.client())
        )
    )
    run.start()
    try:
        wait_for_blocked_load(url)
        throwaway_postgres.restart()
    finally:
        run.join(60)
        blocker.close()
    assert len(errors) == 1 and errors[0] is not None, "the interrupted load must fail its task"
    # psycopg2 reports the cut connection; `with conn` then fails to roll back on it, so the
    # task's last line may be "connection already closed": the chain names the cause.
    assert "connection" in errors[0], errors[0]
    task_log = log_text([r for r in caplog.records if r.name == TASK_LOG.name])
    assert "OperationalError: server closed the connection unexpectedly" in task_log, task_log
    assert count(url, "SELECT count(*) FROM payments_inbox") > 0  # the batch waits, claimed

    retried = run_all(stack, url)  # the task's retry, then the next two runs
    said = "OperationalError: server closed the connection unexpectedly (task retried)"
    result = outcome("PostgreSQL restarts during a load", stack, model, url, said)
    outcomes.append(result)
    assert retried == []
    assert result.ok, (result.expected, result.got)
