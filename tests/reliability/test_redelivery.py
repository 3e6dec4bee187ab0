"""A payment delivered again: the stored one stands, a re-run rewrites nothing.

One path (`run_interval`: the DAG's tasks; back-fill chunks call the same `admit` and
`score_and_load`): a re-delivery with identical contents is a no-op, one with different contents
is quarantined as a conflict and never changes a score or an alert. A re-run of an interval
leaves every row byte-identical, `scored_at` and `updated_at` included.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg2

from fraud_devstack.stack.generate import payments_between
from fraud_pipeline.pipeline.steps import REDELIVERED
from tests.support.cards import stored_id
from tests.support.runs import alerted, dag_runs, outcome, table_dump, warm_up


def quarantined(url: str) -> list[tuple[str, str, str]]:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT trans_num, reason, payload::text FROM payments_quarantine")
        rows = cur.fetchall()
    conn.close()
    return rows


def pick(url: str) -> tuple[str, str]:
    """(an alerted fraud, the least fraud-like legitimate payment) of the stored window."""
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT trans_num FROM payments_scored WHERE alerted_at IS NOT NULL "
            "ORDER BY trans_num LIMIT 1"
        )
        fraud = cur.fetchone()
        cur.execute(
            "SELECT trans_num FROM payments_scored WHERE NOT is_fraud_pred "
            "ORDER BY fraud_probability, trans_num LIMIT 1"
        )
        legit = cur.fetchone()
    conn.close()
    assert fraud and legit
    return str(fraud[0]), str(legit[0])


def test_redelivery_with_other_contents_changes_no_score_and_no_alert(
    stack, model, outcomes, clean_db, caplog
):
    caplog.set_level(logging.INFO)
    run = dag_runs
    warm_up(stack)
    run(stack, clean_db)
    before, emails = table_dump(clean_db), alerted(stack)
    fraud, legit = pick(clean_db)

    def rewrite(payment: dict[str, Any]) -> dict[str, Any]:
        trans_num = stored_id(str(payment.get("trans_num")))  # as stored
        if trans_num == fraud:  # an alerted fraud, now a tiny amount
            return {**payment, "amt": 1.23}
        if trans_num == legit:  # a legitimate payment, now fraud-like
            return {**payment, "amt": 1_299.99, "category": "shopping_net"}
        return payment

    stack.payments_proxy.inject("rewrite_payments", rewrite=rewrite)
    run(stack, clean_db)
    run(stack, clean_db)  # the same conflict again is recorded once
    stack.payments_proxy.clear()

    assert table_dump(clean_db) == before  # scores, flags, scored_at, updated_at, alerted_at
    assert alerted(stack) == emails  # nothing re-sent, nothing new sent
    conflicts = quarantined(clean_db)
    assert sorted((t, r) for t, r, _ in conflicts) == sorted(
        [(fraud, REDELIVERED), (legit, REDELIVERED)]
    )
    start, end = stack.window
    numbers = set(
        payments_between(start, end, seed=stack.seed, rate_per_min=stack.rate_per_min)["cc_num"]
    )
    assert not any(str(n) in payload for _, _, payload in conflicts for n in numbers)
    assert any('"amt": 1.23' in payload for _, _, payload in conflicts)
    result = outcome(
        "re-delivered with other contents",
        stack,
        model,
        clean_db,
        "2 conflicts quarantined, stored rows and alerts unchanged",
        quarantined=2,
    )
    outcomes.append(result)
    assert result.ok, (result.expected, result.got)


def test_a_rerun_leaves_every_row_byte_identical(stack, clean_db, caplog):
    caplog.set_level(logging.INFO)
    run = dag_runs
    warm_up(stack)
    run(stack, clean_db)
    before, emails = table_dump(clean_db), alerted(stack)
    assert len(before) > 1_000
    caplog.clear()
    run(stack, clean_db)
    assert table_dump(clean_db) == before  # updated_at and scored_at included
    assert alerted(stack) == emails
    assert quarantined(clean_db) == []
    said = [r.getMessage() for r in caplog.records if r.name.startswith("fraud_pipeline")]
    assert any("delivered again" in line and "(0 changed)" in line for line in said), said
    assert not any(" changed" in line and "(0 changed)" not in line for line in said), said
