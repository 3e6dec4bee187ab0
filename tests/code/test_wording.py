"""What an analyst reads: one way to write numbers, merchants and why a payment was flagged."""

from __future__ import annotations

import math
from datetime import date

from fraud_pipeline import wording


def _reason(feature: str, value: float, **baseline: float) -> dict:
    return {"feature": feature, "value": value, "contribution": 1.0, "baseline": baseline}


def test_numbers_read_one_way() -> None:
    assert wording.format_count(2793) == "2,793"
    assert wording.format_money(1024.906) == "$1,024.91"
    assert wording.format_money(-3.5) == "-$3.50"
    assert wording.format_signed_money(-1349.5) == "−$1,349.50"
    assert wording.format_percent(0.006396, digits=2) == "0.64%"
    assert wording.format_percent(None) == "—"
    assert wording.format_percent(float("nan")) == "—"  # a NULL figure read by pandas
    assert [wording.format_times(n) for n in (0, 1, 2, 5)] == ["never", "once", "twice", "5 times"]


def test_merchants_lose_the_generator_prefix_only() -> None:
    assert wording.merchant_name("fraud_Kling Inc") == "Kling Inc"
    assert wording.merchant_name("Kling fraud_ Inc") == "Kling fraud_ Inc"


def test_reasons_are_sentences_with_the_cards_own_baseline() -> None:
    # $2,168 in the 24 h before; $7,227 over 30 days is $240.90 a day: 9×.
    spent = _reason("card_sum_24h", 2168.0, card_sum_30d=7227.0, card_count_30d=40)
    assert wording.describe_reason(spent) == (
        "$2,168.00 spent in the 24 h before, 9.0× this card's daily average"
    )
    night = _reason("is_night", 1.0, card_night_share_30d=0.025, card_count_30d=40)
    assert wording.describe_reason(night) == (
        "night payment; this card has paid at night once in 30 days"
    )
    new = _reason("new_category_7d", 1.0, card_category_share_30d=0.0, card_count_30d=40)
    assert wording.describe_reason(new) == "first payment in this category in 30 days"
    amount = _reason("amt", 912.0, amt_vs_card_mean_30d=12.0, card_count_30d=40)
    assert wording.describe_reason(amount) == ("$912.00 payment, 12× this card's average ($76.00)")
    fresh = _reason("card_night_share_30d", -1.0, card_count_30d=0)
    assert wording.describe_reason(fresh) == "no earlier payment by this card in 30 days"
    assert wording.describe_reason(_reason("secs_since_prev", 95.0)) == (
        "95 s after this card's previous payment"
    )
    assert wording.describe_reason(_reason("category_gas_transport", 1.0)) == (
        "category gas transport"
    )
    # The episode features: what the card did in the hours before.
    assert wording.describe_reason(_reason("card_night_sum_24h", 1290.5)) == (
        "$1,290.50 spent at night in the 24 h before"
    )
    assert wording.describe_reason(_reason("card_max_amt_7d", 880.0)) == (
        "largest payment by this card in the 7 days before: $880.00"
    )
    assert wording.describe_reason(_reason("prev_amt", 12.5)) == (
        "this card's previous payment was $12.50"
    )
    assert wording.describe_reason(_reason("prev_is_night", 1.0)) == (
        "this card's previous payment was at night"
    )


def test_reasons_scored_before_the_baseline_was_stored_still_read() -> None:
    old = [
        {"feature": "log_amt", "value": math.log1p(99.0), "contribution": 0.1},
        {"feature": "is_night", "value": 1.0, "contribution": 1.0},
        {"feature": "a_feature_added_later", "value": 0.25, "contribution": 0.1},
    ]
    assert wording.describe_reasons(old) == [  # strongest first
        "night payment",
        "$99.00 payment",
        "a feature added later 0.25",
    ]
    assert wording.describe_reasons(None) == []


def _weighted(feature: str, value: float, contribution: float, **baseline: float) -> dict:
    return {"feature": feature, "value": value, "contribution": contribution, "baseline": baseline}


def test_no_fact_is_said_twice() -> None:
    """Issue 30's examples: the night history after the hour, 'no earlier payment' twice."""
    night = {"is_night": 1.0, "card_night_share_30d": 0.025, "card_count_30d": 40.0}
    reasons = [
        _weighted("hour", 22.0, 0.9, **night),
        _weighted("card_night_share_30d", 0.025, 0.5, **night),
        _weighted("amt", 1025.32, 0.4, amt=1025.32, amt_vs_card_mean_30d=12.0, card_count_30d=40),
    ]
    assert wording.describe_reasons(reasons) == [
        "made at 22:00–22:59 local time; this card has paid at night once in 30 days",
        "$1,025.32 payment, 12× this card's average ($85.44)",
    ]
    fresh = {"card_count_30d": 0.0, "card_night_share_30d": -1.0, "amt": 950.0}
    twice = [
        _weighted("amt_vs_card_mean_30d", 0.0, 0.8, **fresh),
        _weighted("card_night_share_30d", -1.0, 0.6, **fresh),
        _weighted("new_category_7d", 1.0, 0.3, **fresh),
    ]
    assert wording.describe_reasons(twice) == [
        "$950.00 payment; no earlier payment by this card in 30 days"
    ]


def test_only_reasons_that_raise_the_risk_strongest_first() -> None:
    usual = {"card_count_30d": 40.0}
    reasons = [
        _weighted("amt", 1025.32, 0.9, amt=1025.32, amt_vs_card_mean_30d=1.02, **usual),
        _weighted("amt_vs_card_mean_30d", 0.8, 0.7, amt=917.43, **usual),
        _weighted("is_night", 0.0, 0.6),
        _weighted("category_travel", 0.0, 0.5),
        _weighted("secs_since_prev", 95.0, 0.2),
        _weighted("card_count_24h", 6.0, 1.5, **usual),
        _weighted("distance_km", 80.0, -0.3),  # lowered the score
    ]
    assert wording.describe_reasons(reasons) == [
        "6 payments in the 24 h before (40 in 30 days)",
        "95 s after this card's previous payment",
    ]
    for reason in reasons[:5]:
        if reason["feature"] != "secs_since_prev":
            assert not wording.raises_risk(reason), reason


def test_report_links_open_the_day() -> None:
    assert (
        wording.report_link("http://r:8501/", date(2026, 3, 27)) == "http://r:8501/?day=2026-03-27"
    )
    assert wording.report_link("http://r:8501") == "http://r:8501"


def test_case_links_open_the_review_page_on_the_case() -> None:
    assert wording.case_link("http://r:8501/", "s0-p1") == "http://r:8501/review?case=s0-p1"
    assert wording.case_link("https://r/x", "a b&c") == "https://r/x/review?case=a+b%26c"
