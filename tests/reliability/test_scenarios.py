"""Fault injection against the real services: nothing lost, nothing doubled, every fraud alerted once.

Each scenario runs a past night's 45 minutes as three 15-minute runs while a neighbour
misbehaves (a run that fails is a failed Airflow task: its error is recorded, the next run goes
on), then the fault is cleared and the three runs are retried, as Airflow's retries and the next
runs do. The outcome is counted from the database and the emails the SMTP server received, and
compared with what the payments and the model say should happen.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from typing import Any

import psycopg2
import pytest
import requests

from fraud_pipeline.generate import payments_between
from fraud_pipeline.mailcatcher import read_maildir
from fraud_pipeline.model import Model
from fraud_pipeline.payments import to_payments
from fraud_pipeline.pipeline import run_interval
from tests.reliability.conftest import Outcome, Stack

RUNS = 3
PAYMENT_LINE = re.compile(r"^\s*payment (\S+)", re.MULTILINE)


def expected_outcome(stack: Stack, model: Model) -> tuple[set[str], set[str]]:
    """(every payment of the window, those the model flags), computed in-process."""
    start, end = stack.window
    raw = payments_between(start, end, seed=stack.seed, rate_per_min=stack.rate_per_min)
    payments = to_payments(raw)
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


def intervals(stack: Stack) -> list[tuple[Any, Any]]:
    start, end = stack.window
    step = (end - start) / RUNS
    return [
        ((start + i * step).to_pydatetime(), (start + (i + 1) * step).to_pydatetime())
        for i in range(RUNS)
    ]


def warm_up(stack: Stack) -> None:
    """The generator's first window is slow to serve; a run must not fail on it by accident."""
    start, end = intervals(stack)[0]
    url = f"{stack.settings.payments_api_url}/transactions"
    params = {"start": start.isoformat(), "end": end.isoformat()}
    requests.get(url, params=params, timeout=120).raise_for_status()


def run_all(stack: Stack, url: str, client_options: dict[str, Any] | None = None) -> list[str]:
    """The three runs, each on its own connection (as tasks are); the errors of those that failed."""
    errors = []
    for number, (start, end) in enumerate(intervals(stack)):
        conn = psycopg2.connect(url)
        try:
            run_interval(
                conn,
                start,
                end,
                run_id=f"scheduled__{number}",
                client=stack.client(**(client_options or {})),
                settings=stack.settings,
            )
        except Exception as error:  # a failed task: Airflow logs it and retries later
            errors.append(f"{type(error).__name__}: {error}")
        finally:
            conn.close()
    return errors


def count(url: str, query: str) -> int:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(query)
        (value,) = cur.fetchone()
    conn.close()
    return int(value)


def outcome(
    name: str, stack: Stack, model: Model, url: str, message: str, quarantined: int = 0
) -> Outcome:
    payments, frauds = expected_outcome(stack, model)
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT trans_num FROM payments_scored")
        stored = [row[0] for row in cur.fetchall()]
    conn.close()
    emails = alerted(stack)
    got = {
        "payments": len(payments),
        "stored": len(stored),
        "duplicates": len(stored) - len(set(stored)) + len(set(stored) - payments),
        "lost": len(payments - set(stored)),
        "alerts": len(emails),
        "dup_alerts": sum(n - 1 for n in emails.values()),
        "quarantined": count(url, "SELECT count(*) FROM payments_quarantine"),
    }
    expected = {
        "payments": len(payments),
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


Fault = Callable[[Stack], None]

# name -> (break it, mend it, client options, what the failed runs must say)
SCENARIOS: dict[str, tuple[Fault, Fault, dict[str, Any], str]] = {
    "model 429 twice, then fine": (
        lambda s: s.model_proxy.inject("status", times=2, status=429),
        lambda s: s.model_proxy.clear(),
        {},
        "",
    ),
    "model 500 twice, then fine": (
        lambda s: s.model_proxy.inject("status", times=2, status=500),
        lambda s: s.model_proxy.clear(),
        {},
        "",
    ),
    "model 503 for three runs": (
        lambda s: s.model_proxy.inject("status", status=503),
        lambda s: s.model_proxy.clear(),
        {},
        "503",
    ),
    "model hangs once": (
        lambda s: s.model_proxy.inject("hang", times=1, delay_s=5),
        lambda s: s.model_proxy.clear(),
        {"read_timeout": 1.0},
        "",
    ),
    "model answers garbage": (
        lambda s: s.model_proxy.inject("garbage"),
        lambda s: s.model_proxy.clear(),
        {},
        "fraud-xgboost",
    ),
    "model drops one score": (
        lambda s: s.model_proxy.inject("drop_one_score"),
        lambda s: s.model_proxy.clear(),
        {},
        "score",
    ),
    "endpoint switched off for three runs": (
        lambda s: s.model_proxy.stop(),
        lambda s: s.model_proxy.start(),
        {},
        "fraud-xgboost",
    ),
    "SMTP down for three runs": (
        lambda s: s.services.mail.stop(),
        lambda s: s.services.mail.start(),
        {},
        "SMTP",
    ),
    "payments API down": (
        lambda s: s.payments_proxy.stop(),
        lambda s: s.payments_proxy.start(),
        {},
        "payments API",
    ),
    "payments API slow (past its timeout)": (
        lambda s: s.payments_proxy.inject("slow", delay_s=3),
        lambda s: s.payments_proxy.clear(),
        {},
        "payments API",
    ),
    "payments API malformed pages": (
        lambda s: s.payments_proxy.inject("malformed_page"),
        lambda s: s.payments_proxy.clear(),
        {},
        "malformed",
    ),
    "payments API truncated JSON": (
        lambda s: s.payments_proxy.inject("truncate"),
        lambda s: s.payments_proxy.clear(),
        {},
        "not JSON",
    ),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_fault_then_recovery(name, stack, model, outcomes, clean_db):
    break_it, mend_it, client_options, must_say = SCENARIOS[name]
    warm_up(stack)
    break_it(stack)
    errors = run_all(stack, clean_db, client_options)
    mend_it(stack)
    retried = run_all(stack, clean_db)
    result = outcome(name, stack, model, clean_db, (errors or ["no run failed"])[0][:120])
    outcomes.append(result)
    assert not retried, retried
    if must_say:
        assert errors, "the fault went unnoticed"
        assert all(must_say in error for error in errors), errors
    assert result.ok, (result.expected, result.got, errors)


def test_a_run_of_the_same_interval_again_changes_nothing(stack, model, outcomes, clean_db):
    warm_up(stack)
    assert run_all(stack, clean_db) == []
    before = count(clean_db, "SELECT count(*) FROM payments_scored WHERE alerted_at IS NOT NULL")
    assert run_all(stack, clean_db) == [] and run_all(stack, clean_db) == []
    result = outcome("every run three times", stack, model, clean_db, "no run failed")
    outcomes.append(result)
    assert before == result.got["alerts"]
    assert result.ok, (result.expected, result.got)
