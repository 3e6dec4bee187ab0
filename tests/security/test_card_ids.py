"""Transaction ids holding a card-like run are stored with a keyed token of the run
(`cards.identifier_token`): distinct ids stay distinct, a re-delivery finds its payment, no
card number is stored."""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fraud_devstack.stack.airflow_local import local_aws_connection, postgres_connection
from fraud_pipeline import cli
from fraud_pipeline.config import get_settings
from fraud_pipeline.ingest.cards import ID_RUN_MARKER, identifier_token
from fraud_pipeline.security.masking import DIGIT_RUN
from fraud_pipeline.storage.db import connect
from tests.support.airflow_runs import dag_test, run_python
from tests.support.cards import SHAPED, database_text, leaks, stored_id, written
from tests.support.factories import real_rows
from tests.support.hostile_api import hostile_api

KEY = b"test-only-card-token-key"
SEPARATORS = st.sampled_from(["", " ", "  ", "-", ".", "/", " -", "./"])
AROUND = st.text("abcdef0123456789-_:", max_size=12)  # hex ids, short digit groups


@st.composite
def card_run(draw: st.DrawFn) -> str:
    """12 to 19 digits, Luhn-valid or not, grouped by a random separator or none."""
    digits = draw(st.text("0123456789", min_size=12, max_size=19))
    size = draw(st.integers(1, 6))
    separator = draw(SEPARATORS)
    return separator.join(digits[i : i + size] for i in range(0, len(digits), size))


@st.composite
def raw_id(draw: st.DrawFn) -> str:
    """A transaction id with a card-like run somewhere (or two), or none."""
    parts = [draw(AROUND)]
    for _ in range(draw(st.integers(0, 2))):
        parts += [draw(card_run()), draw(st.text("abcdefxyz_", min_size=1, max_size=8))]
    return "".join(parts)


@given(raw_id(), raw_id())
def test_distinct_ids_stay_distinct_and_hold_no_card_number(first, second):
    a, b = identifier_token(first, KEY), identifier_token(second, KEY)
    assert (a == b) == (first == second)
    assert not DIGIT_RUN.search(a) and not DIGIT_RUN.search(b)
    assert identifier_token(first, KEY) == a  # a re-delivery: the same stored id
    assert identifier_token(a, KEY) == a  # what is stored is stored as it is


@given(st.text("abcdef0123456789", max_size=10), card_run(), st.integers(0, 7), st.data())
def test_ids_differing_only_inside_the_run_stay_apart(prefix, run, position, data):
    """The case masking lost: same prefix, same last four digits, one digit changed inside."""
    digits = [i for i, c in enumerate(run) if c.isdigit()][:-4]
    at = digits[position % len(digits)]
    other = data.draw(st.sampled_from([d for d in "0123456789" if d != run[at]]))
    changed = run[:at] + other + run[at + 1 :]
    a, b = identifier_token(prefix + run, KEY), identifier_token(prefix + changed, KEY)
    assert a != b and ID_RUN_MARKER in a and ID_RUN_MARKER in b


@settings(max_examples=20)
@given(raw_id())
def test_the_token_depends_on_the_key(trans_num):
    if DIGIT_RUN.search(trans_num):
        assert identifier_token(trans_num, KEY) != identifier_token(trans_num, b"another key")
    else:
        assert identifier_token(trans_num, KEY) == trans_num  # no run: stored as sent


START = pd.Timestamp("2026-03-02 12:00", tz="UTC")


def twin_items() -> tuple[list, list[str]]:
    """Six real payments in one minute; two ids differ only inside a card number (its last
    four digits the same), written in two shapes: (the API's items, the raw ids)."""
    number = SHAPED["spaces in fours"][0]
    twin = number[:5] + str((int(number[5]) + 1) % 10) + number[6:]
    shape = written("spaces in fours")
    ids = [f"9f1c{shape}", f"9f1c{shape.replace(number[4:8], twin[4:8])}"]
    ids += [f"9f1c-{written('dashes, not Luhn')}", f"9f1c-{written('dots, 15 digits')}"]
    assert len(set(ids)) == 4 and ids[0][-4:] == ids[1][-4:]
    items = []
    for i, record in enumerate(json.loads(real_rows().head(6).to_json(orient="records"))):
        when = START + pd.Timedelta(seconds=5 + 9 * i)
        record["trans_date_trans_time"] = when.isoformat()
        if i < len(ids):
            record["trans_num"] = ids[i]
        items.append((when, record))
    return items, [r["trans_num"] for _, r in items]


def stored_and_quarantined() -> tuple[set[str], list[str]]:
    conn = connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT trans_num FROM payments_scored")
            stored = {row[0] for row in cur.fetchall()}
            cur.execute("SELECT coalesce(trans_num, '') || ': ' || reason FROM payments_quarantine")
            quarantined = [row[0] for row in cur.fetchall()]
        return stored, quarantined
    finally:
        conn.close()


@pytest.mark.parametrize("path", ["DAG", "run-interval"])
def test_ids_differing_only_inside_a_card_number_are_both_stored(
    path, services, airflow_env, monkeypatch
):
    items, raw = twin_items()
    end = START + pd.Timedelta(minutes=1)
    with hostile_api(items) as url:
        if path == "DAG":
            env = {
                **airflow_env,
                "PAYMENTS_API_URL": url,
                "AIRFLOW_CONN_AWS_DEFAULT": local_aws_connection(
                    os.environ["SAGEMAKER_ENDPOINT_URL"]
                ),
                "SMTP_PORT": os.environ["SMTP_PORT"],
                "AIRFLOW_CONN_FRAUD_DB": postgres_connection(os.environ["DATABASE_URL"]),
            }
            for _ in range(2):  # the second run: a re-delivery of the same minute
                out = run_python(dag_test("fraud_pipeline", [end.isoformat()]), env)
                assert "STATE success" in out, out[-3000:]
        else:
            monkeypatch.setenv("PAYMENTS_API_URL", url)
            get_settings.cache_clear()
            args = ["run-interval", "--start", START.isoformat(), "--end", end.isoformat()]
            for _ in range(2):
                assert cli.main(args) == 0
    stored, quarantined = stored_and_quarantined()
    assert quarantined == []
    assert stored == {stored_id(t) for t in raw} and len(stored) == len(raw)
    assert not leaks([SHAPED[s][0] for s in SHAPED], database_text(os.environ["DATABASE_URL"]))
