"""The review queue as cases (issue 30): one case per card episode, live alerts first, filters,
search and paging with counts, claims so that two analysts never work one case, one verdict for
a whole episode.

Read as the report's own role (`fraud_report_reader`), written as the reviewer role, on the
seeded PostgreSQL. Expected cases come from an independent grouping of `payments_scored` here in
Python, never from the report's functions.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg2
import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine

from fraud_pipeline.report import reviews
from fraud_pipeline.report.reviews import CaseFilter
from fraud_pipeline.security import audit
from fraud_pipeline.storage import db
from tests.support.report import SeededDay

EVERYTHING = CaseFilter(days=None, status="all")


def _engine(url: str, role: str) -> Engine:
    return create_engine(db.as_user(url, role).replace("postgresql://", "postgresql+psycopg2://"))


@pytest.fixture
def reader(seeded: SeededDay) -> Iterator[Engine]:
    engine = _engine(seeded.url, "fraud_report_reader")
    yield engine
    engine.dispose()


@pytest.fixture
def reviewer(seeded: SeededDay) -> Iterator[Engine]:
    engine = _engine(seeded.url, "fraud_report_reviewer")
    yield engine
    engine.dispose()


def execute(seeded: SeededDay, query: str, *params: Any) -> None:
    with psycopg2.connect(seeded.url) as conn, conn.cursor() as cur:
        cur.execute(query, params)
    conn.close()


def expected_cases(seeded: SeededDay) -> dict[str, list[dict[str, Any]]]:
    """Every card's alerts split where 7 days pass without one: case key -> its alerts."""
    rows = seeded.rows(
        "SELECT trans_num, card_token, trans_time, fraud_probability, alert_kind, card_last4, "
        "category, model_version, amt, merchant FROM payments_scored "
        "WHERE is_fraud_pred OR rule_flagged "
        "ORDER BY card_token, trans_time, trans_num"
    )
    cases: dict[str, list[dict[str, Any]]] = {}
    key, previous = "", None
    for trans_num, card, time, probability, kind, last4, category, model, amt, merchant in rows:
        if previous is None or previous[0] != card or time - previous[1] > timedelta(days=7):
            key = trans_num
        cases.setdefault(key, []).append(
            {
                "trans_num": trans_num,
                "probability": probability,
                "live": (kind or "alert") == "alert",
                "last4": last4.strip(),
                "category": category,
                "model": model,
                "amt": float(amt),
                "merchant": merchant,
                "time": time,
            }
        )
        previous = (card, time)
    return cases


def every_case(engine: Engine, where: CaseFilter, size: int = 7) -> list[reviews.CaseRow]:
    """All pages of the queue, in order; each page's count is the same."""
    first = reviews.review_cases(engine, where, 1, size)
    shown = list(first.cases)
    page = 2
    while len(shown) < first.matching:
        more = reviews.review_cases(engine, where, page, size)
        assert more.matching == first.matching and more.cases
        shown += more.cases
        page += 1
    assert len(shown) == first.matching
    return shown


@pytest.mark.usefixtures("report_env")
def test_a_payment_flagged_by_a_rule_alone_is_a_case(seeded: SeededDay, reader: Engine) -> None:
    """Rules and block lists alert too (issue 30 item 3): the analyst reaches those alerts."""
    ((trans_num,),) = seeded.rows(
        "SELECT trans_num FROM payments_scored p WHERE NOT is_fraud_pred AND NOT EXISTS "
        "(SELECT 1 FROM payments_scored q WHERE q.card_token = p.card_token AND q.is_fraud_pred) "
        "ORDER BY trans_num LIMIT 1"
    )
    assert trans_num not in {case.key for case in every_case(reader, EVERYTHING)}
    hits = json.dumps(
        [
            {"kind": "rule", "rule_id": 1, "version": 3, "name": "big online", "mode": "enabled"},
            {"kind": "block", "entry_id": 2, "field": "merchant", "value": "fraud_Kilback LLC"},
        ]
    )
    execute(
        seeded,
        "UPDATE payments_scored SET rule_flagged = true, rule_hits = %s WHERE trans_num = %s",
        hits,
        trans_num,
    )
    assert trans_num in {case.key for case in every_case(reader, EVERYTHING)}
    assert trans_num in expected_cases(seeded)
    # The case says what flagged it, in the alert email's words.
    case = reviews.review_case(reader, trans_num)
    assert case is not None
    assert [alert.flagged_by for alert in case.alerts] == [
        ("rule “big online” (v3)", "block list: merchant fraud_Kilback LLC")
    ]


@pytest.mark.usefixtures("report_env")
def test_one_case_per_card_episode_live_first_paged_with_counts(
    seeded: SeededDay, reader: Engine
) -> None:
    expected = expected_cases(seeded)
    assert any(len(alerts) > 1 for alerts in expected.values()), "a card with several alerts"
    # Every alert went out in a catch-up digest, but for one low-risk case: a live alert.
    live = min(expected, key=lambda key: max(a["probability"] for a in expected[key]))
    execute(seeded, "UPDATE payments_scored SET alert_kind = 'digest' WHERE is_fraud_pred")
    execute(seeded, "UPDATE payments_scored SET alert_kind = 'alert' WHERE trans_num = %s", live)

    shown = every_case(reader, EVERYTHING)
    assert sorted(case.key for case in shown) == sorted(expected)  # each case once, every one
    assert shown[0].key == live and shown[0].live  # live alerts first...
    risk = [case.top_probability for case in shown[1:]]
    assert risk == sorted(risk, reverse=True)  # ...then the riskiest
    for case in shown:
        alerts = expected[case.key]
        assert (case.alerts, case.open_alerts) == (len(alerts), len(alerts))
        assert case.card.endswith(alerts[0]["last4"]) and case.card.startswith("****")

    only_live = reviews.review_cases(reader, CaseFilter(days=None, kind="live"))
    assert [case.key for case in only_live.cases] == [live] and only_live.matching == 1
    digests = reviews.review_cases(reader, CaseFilter(days=None, kind="digest"))
    assert digests.matching == len(expected) - 1


@pytest.mark.usefixtures("report_env")
def test_filters_and_search_find_the_cases_an_sql_count_finds(
    seeded: SeededDay, reader: Engine
) -> None:
    expected = expected_cases(seeded)
    target = max(expected, key=lambda key: len(expected[key]))
    last4 = expected[target][0]["last4"]

    def keys(**where: Any) -> set[str]:
        return {case.key for case in every_case(reader, CaseFilter(days=None, **where))}

    def having(test: Any) -> set[str]:
        return {key for key, alerts in expected.items() if any(test(a) for a in alerts)}

    assert target in keys(search=last4)
    assert keys(search=last4) == having(lambda a: a["last4"] == last4)
    other = expected[target][-1]["trans_num"]
    assert keys(search=other) == {target}  # any alert of the case finds it
    merchant = expected[target][0]["merchant"]
    assert keys(search=merchant.upper()[6:]) == having(
        lambda a: merchant.upper()[6:] in a["merchant"].upper()
    )
    category = expected[target][0]["category"]
    assert keys(category=category) == having(lambda a: a["category"] == category)
    assert keys(model="test-model") == set(expected) and keys(model="none") == set()
    assert keys(score_min=0.99) == having(lambda a: a["probability"] >= 0.99)
    assert keys(amount_min=100.0, amount_max=500.0) == having(lambda a: 100 <= a["amt"] <= 500)
    # Days: the cases whose latest alert is in the last N business days, today included.
    for days in (1, 2):
        since = seeded.day + timedelta(days=2 - days)  # today is the seeded day + 1
        kept = {
            key
            for key, alerts in expected.items()
            if max(a["time"] for a in alerts) >= seeded.bounds(since)[0]
        }
        assert keys() >= kept
        assert {c.key for c in every_case(reader, CaseFilter(days=days, status="all"))} == kept


@pytest.mark.usefixtures("report_env")
def test_a_verdict_on_one_alert_leaves_the_rest_of_the_case_open(
    seeded: SeededDay, reader: Engine, reviewer: Engine
) -> None:
    expected = expected_cases(seeded)
    target = max(expected, key=lambda key: len(expected[key]))
    first = expected[target][0]["trans_num"]
    reviews.record_verdicts(reviewer, [first], reviews.FALSE_ALARM, "alice", case_key=target)
    [case] = reviews.review_cases(reader, CaseFilter(days=None, search=first)).cases
    assert (case.alerts, case.open_alerts) == (len(expected[target]), len(expected[target]) - 1)
    assert case.claimed_by == "alice"  # a verdict claims the case
    opened = reviews.review_case(reader, first)
    assert opened is not None and opened.key == target
    assert opened.alerts[0].verdict == reviews.FALSE_ALARM
    assert opened.open_trans_nums == [a["trans_num"] for a in expected[target][1:]]


@pytest.mark.usefixtures("report_env")
def test_one_analyst_per_case_and_one_verdict_for_the_episode(
    seeded: SeededDay, reader: Engine, reviewer: Engine
) -> None:
    expected = expected_cases(seeded)
    target = max(expected, key=lambda key: len(expected[key]))
    assert reviews.claim_case(reviewer, target, "alice") == "alice"
    assert reviews.claim_case(reviewer, target, "bob") == "alice"  # already claimed
    with pytest.raises(reviews.CaseHeld, match="alice"):
        reviews.record_case_verdict(reviewer, target, reviews.CONFIRMED, "bob")
    assert seeded.rows("SELECT count(*) FROM alert_reviews") == [(0,)]

    written = reviews.record_case_verdict(
        reviewer, target, reviews.CONFIRMED, "alice", "cardholder called"
    )
    assert written == len(expected[target])
    assert seeded.rows(
        "SELECT trans_num, verdict, note, analyst FROM alert_reviews ORDER BY trans_num"
    ) == sorted(
        (a["trans_num"], "confirmed_fraud", "cardholder called", "alice") for a in expected[target]
    )
    [case] = reviews.review_cases(reader, CaseFilter(days=None, status="reviewed")).cases
    assert (case.key, case.open_alerts) == (target, 0)
    assert target not in {c.key for c in every_case(reader, CaseFilter(days=None))}
    notes = reviews.case_notes(reader, target)
    assert set(notes["Who"]) == {"alice"} and len(notes) == len(expected[target])

    # A lead gives the case to bob; bob releases it.
    assert reviews.claim_case(reviewer, target, "bob", assigned_by="lena") == "bob"
    assert not reviews.release_case(reviewer, target, "alice")
    assert reviews.release_case(reviewer, target, "bob")
    with psycopg2.connect(seeded.url) as conn, conn.cursor() as cur:
        assert audit.verify(cur).ok
        done = [(e.actor, e.action, e.target) for e in reversed(audit.recent(cur, 100))]
    conn.close()
    assert done[0] == ("alice", audit.CASE_CLAIM, target)
    assert ("lena", audit.CASE_ASSIGN, target) in done
    assert ("bob", audit.CASE_RELEASE, target) in done
    assert ("bob", audit.CASE_CLAIM, target) not in done  # a refused claim changes nothing
    assert sum(action == audit.VERDICT for _, action, _ in done) == len(expected[target])


@pytest.mark.usefixtures("report_env")
def test_the_report_role_reads_cases_but_cannot_claim(seeded: SeededDay, reader: Engine) -> None:
    key = next(iter(expected_cases(seeded)))
    with pytest.raises(Exception, match="permission denied"):
        reviews.claim_case(reader, key, "mallory")
    with reader.connect() as connection, pytest.raises(Exception, match="permission denied"):
        connection.exec_driver_sql("SELECT * FROM case_claims")
