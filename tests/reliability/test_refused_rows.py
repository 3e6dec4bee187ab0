"""A payment the model cannot score never blocks the others (issue #13).

The model server, behind the fault proxy, refuses any request holding one of two chosen payments
(a 400, as a container that rejects an input), or scores them NaN. The client finds those rows by
halving the batch, the pipeline quarantines them with the model's reason, and every other payment
of the window is stored and alerted once (`steps.score_chunk`: the one place every path scores).
"""

from __future__ import annotations

import logging
import re
from typing import Any

import numpy as np
import pytest

from fraud_devstack.stack.generate import payments_between
from fraud_pipeline.ingest.payments import to_payments
from fraud_pipeline.model.features import FEATURE_COLUMNS
from tests.support.reliability import Stack
from tests.support.runs import count, dag_runs, outcome, run_all, warm_up

AMT = FEATURE_COLUMNS.index("amt")


def chosen(stack: Stack, model: Any) -> tuple[frozenset[str], np.ndarray]:
    """(the payments to refuse: a fraud and a legitimate one, each its card's last in the
    window, so that no other payment's history changes; every payment sharing their amounts)."""
    start, end = stack.window
    raw = payments_between(start, end, seed=stack.seed, rate_per_min=stack.rate_per_min)
    payments = to_payments(raw)
    flagged = model.predict(model.features(payments)) >= model.threshold
    last = ~payments.duplicated("card_token", keep="last").to_numpy()
    picks = [np.flatnonzero(last & flagged)[0], np.flatnonzero(last & ~flagged)[0]]
    amounts = np.float32(payments["amt"].to_numpy()[picks])
    hit = np.isin(np.float32(payments["amt"].to_numpy()), amounts)
    return frozenset(payments.loc[hit, "trans_num"]), amounts


FAULTS = {"refuses them (400)": "refuse_rows", "scores them NaN": "nan_rows"}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_payments_the_model_cannot_score_are_quarantined_alone(
    fault, stack, model, outcomes, clean_db, caplog
):
    caplog.set_level(logging.INFO)
    warm_up(stack)
    set_aside, amounts = chosen(stack, model)
    stack.model_proxy.inject(FAULTS[fault], rows=lambda rows: np.isin(rows[:, AMT], amounts))
    dag_runs(stack, clean_db)
    dag_runs(stack, clean_db)  # the same window again: quarantined once, nothing re-sent
    said = [r.getMessage() for r in caplog.records if r.name.startswith("fraud_pipeline")]
    # Each refused payment once, in whichever batches they fell (a re-run sends none again).
    refused = [int(m[1]) for line in said if (m := re.search(r"refused (\d+) of \d+ rows", line))]
    assert sum(refused) == len(set_aside), said
    reasons = count(
        clean_db,
        "SELECT count(*) FROM payments_quarantine WHERE reason LIKE 'model refused to score it: %'",
    )
    assert reasons == len(set_aside)
    result = outcome(
        f"model {fault.split(' (')[0]}".replace("refuses them", "refuses 2 payments").replace(
            "scores them NaN", "scores 2 payments NaN"
        ),
        stack,
        model,
        clean_db,
        f"{len(set_aside)} payments quarantined, the others stored",
        quarantined=len(set_aside),
        set_aside=set_aside,
    )
    outcomes.append(result)
    assert result.ok, (result.expected, result.got)


def test_an_endpoint_that_refuses_everything_fails_the_run_and_quarantines_nothing(
    stack, model, clean_db, caplog
):
    """A misconfigured endpoint is not 2,000 bad payments: they stay pending for the next run."""
    warm_up(stack)
    stack.model_proxy.inject("refuse_rows", rows=lambda rows: np.ones(len(rows), bool))
    errors = run_all(stack, clean_db)
    assert len(errors) == 3 and all("refused" in e for e in errors), errors
    assert count(clean_db, "SELECT count(*) FROM payments_quarantine") == 0
    assert count(clean_db, "SELECT count(*) FROM payments_scored") == 0
    stack.model_proxy.clear()
    assert run_all(stack, clean_db) == []
    result = outcome("retried", stack, model, clean_db, "")
    assert result.ok, (result.expected, result.got)
