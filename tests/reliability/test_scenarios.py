"""Fault injection against the real services: nothing lost, nothing doubled, every fraud alerted once.

Each scenario runs a past night's 45 minutes as three 15-minute runs while a neighbour
misbehaves (a run that fails is a failed Airflow task: its error is recorded, the next run goes
on), then the fault is cleared and the three runs are retried, as Airflow's retries and the next
runs do. The package must say what happened in its own log (the task log), not only raise.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.support.reliability import Stack
from tests.support.runs import count, outcome, run_all, warm_up

Fault = Callable[[Stack], None]


@dataclass
class Scenario:
    break_it: Fault
    mend_it: Fault
    must_log: str  # in the package's own warnings/errors while the fault lasts
    must_raise: str = ""  # in every failed run's exception ("" = no run may fail)
    client: dict[str, Any] = field(default_factory=dict)
    within_s: float = 0.0  # the three runs during the fault end within this (0 = not timed)


def model_cleared(s: Stack) -> None:
    s.model_proxy.clear()


def payments_cleared(s: Stack) -> None:
    s.payments_proxy.clear()


SCENARIOS: dict[str, Scenario] = {
    "model 429 twice, then fine": Scenario(
        lambda s: s.model_proxy.inject("status", times=2, status=429),
        model_cleared,
        must_log="429 (attempt 1), retrying",
    ),
    "model 500 twice, then fine": Scenario(
        lambda s: s.model_proxy.inject("status", times=2, status=500),
        model_cleared,
        must_log="500 (attempt 1), retrying",
    ),
    "model 503 for three runs": Scenario(
        lambda s: s.model_proxy.inject("status", status=503),
        model_cleared,
        must_log="not scored, their payments stay pending",
        must_raise="status 503",
    ),
    "model hangs once": Scenario(
        lambda s: s.model_proxy.inject("hang", times=1, delay_s=5),
        model_cleared,
        must_log="timeout (attempt 1), retrying",
        client={"read_timeout": 1.0},
    ),
    "model answers garbage": Scenario(
        lambda s: s.model_proxy.inject("garbage"),
        model_cleared,
        must_log="unreadable response",
        must_raise="'fraud-xgboost'",
    ),
    "model drops one score": Scenario(
        lambda s: s.model_proxy.inject("drop_one_score"),
        model_cleared,
        must_log="scores came back for",
        must_raise="scores came back for",
    ),
    "endpoint switched off for three runs": Scenario(
        lambda s: s.model_proxy.stop(),
        lambda s: s.model_proxy.start(),
        must_log="not scored, their payments stay pending",
        must_raise="status unreachable",
    ),
    "SMTP down for three runs": Scenario(
        lambda s: s.services.mail.stop(),
        lambda s: s.services.mail.start(),
        must_log="frauds not alerted, they stay pending",
        must_raise="SMTP",
    ),
    "payments API down": Scenario(
        lambda s: s.payments_proxy.stop(),
        lambda s: s.payments_proxy.start(),
        must_log="not fetched, nothing landed",
        must_raise="unreachable",
    ),
    "payments API slow (past its timeout)": Scenario(
        lambda s: s.payments_proxy.inject("slow", delay_s=3),
        payments_cleared,
        must_log="Read timed out",
        must_raise="payments API",
    ),
    "payments API drips its answer (budget)": Scenario(
        lambda s: (
            s.limit(payments_api_fetch_budget_s=3),
            s.payments_proxy.inject("drip", delay_s=0.5),
        ),
        lambda s: (s.relax(), s.payments_proxy.clear()),
        must_log="exceeded its 3 s budget after 0 pages",
        must_raise="exceeded its 3 s budget",
        within_s=3 * (3 + 3),
    ),
    "payments API pages forever (page limit)": Scenario(
        lambda s: (s.limit(payments_api_max_pages=25), s.payments_proxy.inject("endless_pages")),
        lambda s: (s.relax(), s.payments_proxy.clear()),
        must_log="exceeded its limit of 25 pages",
        must_raise="limit of 25 pages",
        within_s=3 * 5,
    ),
    "model drips its answer (deadline)": Scenario(
        lambda s: s.model_proxy.inject("drip", delay_s=1.0),
        model_cleared,
        must_log="scoring exceeded its 3 s deadline",
        must_raise="exceeded its 3 s deadline",
        client={"deadline_s": 3, "read_timeout": 5.0},
        within_s=3 * (3 + 4),
    ),
    "payments API malformed pages": Scenario(
        lambda s: s.payments_proxy.inject("malformed_page"),
        payments_cleared,
        must_log="page is malformed",
        must_raise="malformed",
    ),
    "payments API truncated JSON": Scenario(
        lambda s: s.payments_proxy.inject("truncate"),
        payments_cleared,
        must_log="not JSON",
        must_raise="not JSON",
    ),
}


def package_log(caplog: pytest.LogCaptureFixture, level: int = logging.WARNING) -> str:
    """What the pipeline itself wrote to the task log (not the harness, not libraries)."""
    return "\n".join(
        record.getMessage()
        for record in caplog.records
        if record.name.startswith("fraud_pipeline") and record.levelno >= level
    )


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_fault_then_recovery(name, stack, model, outcomes, clean_db, caplog):
    scenario = SCENARIOS[name]
    caplog.set_level(logging.INFO)
    warm_up(stack)
    scenario.break_it(stack)
    began = time.monotonic()
    errors = run_all(stack, clean_db, stack.client(**scenario.client))
    took = time.monotonic() - began
    during = package_log(caplog)
    scenario.mend_it(stack)
    retried = run_all(stack, clean_db)
    said = next((line for line in during.splitlines() if scenario.must_log in line), during)
    result = outcome(name, stack, model, clean_db, said[:150])
    outcomes.append(result)
    assert not retried, retried
    if scenario.within_s:  # each run stopped within its budget plus a few seconds
        assert took < scenario.within_s, f"{took:.1f} s"
    assert scenario.must_log in during, during
    if scenario.must_raise:
        assert len(errors) == 3, "every run during the fault must fail, loudly"
        assert all(scenario.must_raise in error for error in errors), errors
    else:
        assert errors == []
    if result.expected["alerts"]:
        assert "sent for" in package_log(caplog, logging.INFO)  # the recovery is logged too
    assert result.ok, (result.expected, result.got, errors)


@pytest.mark.clock
def test_a_run_of_the_same_interval_again_changes_nothing(stack, model, outcomes, clean_db):
    warm_up(stack)
    assert run_all(stack, clean_db) == []
    before = count(clean_db, "SELECT count(*) FROM payments_scored WHERE alerted_at IS NOT NULL")
    assert run_all(stack, clean_db) == [] and run_all(stack, clean_db) == []
    result = outcome("every run three times", stack, model, clean_db, "no run failed")
    outcomes.append(result)
    assert before == result.got["alerts"]
    assert result.ok, (result.expected, result.got)
