"""Card numbers in nine shapes through the payments API, on the DAG's steps and on
`fraud-pipeline run-interval` (issue #29): in free-text fields, inside transaction ids, in an
error body. Every payment is stored with the number masked (its last four digits only), the
failed run says what the API answered, masked; the suite's scan (`no_card_number_left`, the
broad rule: any 12+ digit run in any shape) finds none in the database, the logs or the mail,
and this test scans what the CLI printed too."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from fraud_pipeline import cli
from tests.support.cards import PLANTED, SHAPED, broad_scan, scan, written
from tests.support.reliability import MEASURES, Outcome, Stack
from tests.support.runs import count, run_all, select, warm_up, window_payments

FIELDS = ["merchant", "street", "city", "job", "first", "last"]
SHAPES = list(SHAPED)


def plant(page: dict[str, Any]) -> dict[str, Any]:
    """Every payment gets a shape in a free-text field, every third one in its id as well."""
    for number, payment in enumerate(page["payments"]):
        shape = written(SHAPES[number % len(SHAPES)])
        field = FIELDS[number % len(FIELDS)]
        payment[field] = f"{payment[field]} {shape}"
        if number % 3 == 0:
            payment["trans_num"] = f"{payment['trans_num'][:20]}-{shape}"
    return page


ERROR_BODY = json.dumps({"error": "invalid payments", "cards": [written(s) for s in SHAPES]})


def run_path(path: str, stack: Stack, url: str, capsys: pytest.CaptureFixture[str]) -> list[str]:
    """The window on `path`; what its failed runs said (the DAG's task errors, the CLI's
    ERROR line)."""
    if path == "DAG steps":
        return run_all(stack, url)
    start, end = stack.window
    args = ["run-interval", "--start", start.isoformat(), "--end", end.isoformat()]
    code = cli.main([*args, "--chunk-minutes", "15"])
    printed = capsys.readouterr()
    return [] if code == 0 else [printed.err + printed.out]


@pytest.mark.parametrize("path", ["DAG steps", "run-interval CLI"])
def test_card_numbers_in_nine_shapes_are_masked_in_every_sink(
    path, stack, clean_db, outcomes, caplog, capsys
):
    caplog.set_level(logging.INFO)
    warm_up(stack)
    stack.payments_proxy.inject("status", status=500, body=ERROR_BODY.encode())
    failed = run_path(path, stack, clean_db, capsys)
    stack.payments_proxy.clear()
    stack.payments_proxy.inject("rewrite_page", rewrite=plant)
    again = run_path(path, stack, clean_db, capsys)
    stack.payments_proxy.clear()

    said = "\n".join(failed + again + [capsys.readouterr().err])
    assert failed and "answered 500" in failed[0] and not again, said
    assert not scan(PLANTED, [("the errors and what the CLI printed", said)])
    assert not broad_scan([("the errors and what the CLI printed", said)])
    stored = count(clean_db, "SELECT count(*) FROM payments_scored")
    masked_ids = count(clean_db, "SELECT count(*) FROM payments_scored WHERE trans_num LIKE '%*%'")
    masked_text = select(
        clean_db,
        "SELECT count(*) FROM payments_scored WHERE concat_ws(' ', "
        + ", ".join(FIELDS)
        + ") ~ '[*]{8}[0-9]{4}'",
    )[0][0]
    served = len(window_payments(stack))
    measures = dict.fromkeys(MEASURES, 0)
    outcomes.append(
        Outcome(
            f"card numbers in {len(SHAPES)} shapes ({path})",
            {**measures, "payments": served, "stored": served},
            {**measures, "payments": served, "stored": stored, "lost": served - stored},
            f"masked: {masked_text} fields, {masked_ids} ids; {said.splitlines()[0][:90]}",
        )
    )
    assert stored > 100
    assert masked_text == stored
    assert masked_ids >= stored // 3
