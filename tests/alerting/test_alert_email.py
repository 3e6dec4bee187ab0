"""The fraud alert email itself: what an analyst reads, and what must never be in it."""

from __future__ import annotations

from typing import Any

import pandas as pd

from fraud_pipeline.alerting.alerts import render
from fraud_pipeline.config import get_settings
from tests.support.factories import real_rows, scored_payments


def _frauds(n: int = 3) -> list[dict[str, Any]]:
    frame = scored_payments(n, seed=4)
    frame.loc[0, "merchant"] = "<script>alert('x')</script>"
    frame["reasons"] = [
        [
            {"feature": "amt_vs_card_mean_7d", "value": 9.5, "contribution": 2.1},
            {"feature": "category=shopping_net", "value": 1.0, "contribution": 0.7},
        ]
    ] * n
    records = frame.to_dict(orient="records")
    for record in records:
        record["trans_time"] = record["trans_time"].to_pydatetime()
    return records


def test_one_email_lists_every_fraud_with_what_an_analyst_needs():
    settings = get_settings()
    frauds = _frauds()
    message = render(frauds, "abc123", settings)
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    for fraud in frauds:
        local = pd.Timestamp(fraud["trans_time"]).tz_convert(settings.business_tz)
        for part in (text, html):
            assert f"**** **** **** {fraud['card_last4']}" in part
            assert fraud["category"] in part and f"{fraud['amt']:.2f}" in part
            assert local.strftime("%Y-%m-%d %H:%M:%S") in part
            assert f"{100 * fraud['fraud_probability']:.1f}%" in part
            assert fraud["model_version"] in part and "amt_vs_card_mean_7d" in part
        assert f"{fraud['first']} {fraud['last']}" in text
    assert f'href="{settings.report_url}"' in html and settings.report_url in text
    assert "<script>" not in html and "&lt;script&gt;" in html  # hostile text is escaped


def test_no_full_card_number_and_a_deterministic_message_id():
    frauds = _frauds()
    first = render(frauds, "abc123", get_settings())
    again = render(frauds, "abc123", get_settings())
    assert first["Message-ID"] == again["Message-ID"] == "<fraud-alert-abc123@fraud-pipeline>"
    raw = first.as_string()
    numbers = set(real_rows()["cc_num"].astype(str))
    assert not [n for n in numbers if n in raw]
    assert not [f["card_token"] for f in frauds if f["card_token"] in raw]  # nor the token
