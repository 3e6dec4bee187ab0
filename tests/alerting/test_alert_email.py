"""The fraud alert email itself: what an analyst reads, and what must never be in it."""

from __future__ import annotations

import re
from datetime import timedelta
from email.utils import parsedate_to_datetime
from html import unescape as html_unescape
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg2.extensions

from fraud_devstack.stack.mailcatcher import MailCatcher
from fraud_pipeline import clock
from fraud_pipeline.alerting.alerts import SmtpTarget, alert_pending, render
from fraud_pipeline.config import get_settings
from fraud_pipeline.net import free_port
from fraud_pipeline.report.morning_summary import send_daily_summary
from fraud_pipeline.storage.upsert import upsert_scored
from tests.support.factories import public_sample, real_rows, scored_payments

# What the model stores per flagged payment (model.reasons): the feature, its value, its SHAP
# contribution and the card's own history.
CARD = {"amt": 1024.91, "card_count_30d": 40.0, "card_sum_30d": 7227.0}
REASONS = [
    {
        "feature": "card_sum_24h",
        "value": 2168.0,
        "contribution": 2.1,
        "baseline": {**CARD, "is_night": 1.0, "card_night_share_30d": 0.025},
    },
    {
        "feature": "is_night",
        "value": 1.0,
        "contribution": 0.9,
        "baseline": {**CARD, "is_night": 1.0, "card_night_share_30d": 0.025},
    },
    {
        "feature": "new_category_7d",
        "value": 1.0,
        "contribution": 0.4,
        "baseline": {**CARD, "card_category_share_30d": 0.0},
    },
]
SENTENCES = [
    "$2,168.00 spent in the 24 h before, 9.0× this card's daily average",
    "night payment; this card has paid at night once in 30 days",
    "first payment in this category in 30 days",
]


def _frauds(n: int = 4, start: Any = None) -> pd.DataFrame:
    """`n` flagged payments at generator merchants ('fraud_…'), not in order of risk."""
    frame = scored_payments(n, seed=4, start=start)
    frame["merchant"] = "fraud_" + frame["merchant"].str.removeprefix("fraud_")
    frame.loc[0, "merchant"] = "<script>alert('x')</script>"
    frame["amt"] = [1024.91, 12.5, 310.0, 75.25][:n]
    frame["fraud_probability"] = [0.61, 0.97, 0.42, 0.88][:n]
    frame["is_fraud_pred"] = True
    frame["threshold"] = 0.356
    frame["reasons"] = [REASONS] * n
    return frame


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    records = frame.to_dict(orient="records")
    for record in records:
        record["trans_time"] = record["trans_time"].to_pydatetime()
    return records


def test_an_alert_email_reads_as_sentences_riskiest_first(
    conn: psycopg2.extensions.connection, tmp_path: Path
) -> None:
    """Through the real path: stored frauds, alert_pending, an SMTP server, the .eml received."""
    settings = get_settings()
    frauds = _frauds(start=clock.now() - timedelta(minutes=20))
    upsert_scored(conn, frauds)
    with MailCatcher(tmp_path / "mail", port=free_port()) as mail:
        before = clock.now().replace(microsecond=0)
        summary = alert_pending(conn, settings, SmtpTarget("127.0.0.1", mail.port))
        after = clock.now()
        (message,) = mail.messages()
    assert summary["frauds_alerted"] == 4 and summary["emails"] == 1
    assert before <= parsedate_to_datetime(message["Date"]) <= after  # the business clock's
    assert message["Message-ID"].startswith("<fraud-alert-")
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    # Riskiest first: 97%, 88%, 61%, 42%, in the text and in the HTML.
    ranked = frauds.sort_values("fraud_probability", ascending=False)
    for part in (text, html):
        positions = [part.index(f"{100 * p:.1f}%") for p in ranked["fraud_probability"]]
        assert positions == sorted(positions)
        for sentence in SENTENCES:
            assert sentence in html_unescape(part)
        assert "fraud_" not in part and "card_sum_24h" not in part  # plain names only
        assert "$1,024.91" in part and "$12.50" in part  # one number format
    assert re.findall(r"^\s*payment (\S+)", text, re.MULTILINE) == list(ranked["trans_num"])
    for merchant in frauds["merchant"].iloc[1:]:
        assert merchant.removeprefix("fraud_") in text
    assert message["Subject"] == "[fraud] 4 suspected frauds ($1,422.66)"


def test_one_email_lists_every_fraud_with_what_an_analyst_needs() -> None:
    settings = get_settings()
    frauds = _records(_frauds(3))
    message = render(frauds, "abc123", settings)
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    for fraud in frauds:
        local = pd.Timestamp(fraud["trans_time"]).tz_convert(settings.business_tz)
        for part in (text, html):
            assert f"**** **** **** {fraud['card_last4']}" in part
            assert fraud["category"] in part and f"${fraud['amt']:,.2f}" in part
            assert local.strftime("%Y-%m-%d %H:%M:%S") in part
            assert f"{100 * fraud['fraud_probability']:.1f}%" in part
            assert fraud["model_version"] in part
        assert f"{fraud['first']} {fraud['last']}" in text
        # Each fraud links to its case on the To review page (issue 30).
        case = f"{settings.report_url.rstrip('/')}/review?case={fraud['trans_num']}"
        assert f"case: {case}" in text and f'href="{case}"' in html
    assert f'href="{settings.report_url}"' in html and settings.report_url in text
    assert "<script>" not in html and "&lt;script&gt;" in html  # hostile text is escaped


def test_no_full_card_number_and_a_deterministic_message_id() -> None:
    frauds = _records(_frauds())
    first = render(frauds, "abc123", get_settings())
    again = render(list(reversed(frauds)), "abc123", get_settings())
    assert first["Message-ID"] == again["Message-ID"] == "<fraud-alert-abc123@fraud-pipeline>"
    assert first.get_body(("plain",)).get_content() == again.get_body(("plain",)).get_content()
    raw = first.as_string()
    numbers = set(real_rows()["cc_num"].astype(str))
    assert not [n for n in numbers if n in raw]
    assert not [f["card_token"] for f in frauds if f["card_token"] in raw]  # nor the token


def test_the_morning_summary_has_a_date_an_id_and_one_number_format(
    conn: psycopg2.extensions.connection, tmp_path: Path
) -> None:
    day = clock.yesterday()
    # Real rows from where the public files' frauds begin, so both kinds of error occur.
    rows = public_sample().iloc[2_000:]
    payments = scored_payments(
        1200, start=clock.day_start(day) + timedelta(hours=1), step_s=30, rows=rows
    )
    upsert_scored(conn, payments)
    with MailCatcher(tmp_path / "mail", port=free_port()) as mail:
        summary = send_daily_summary(conn, day, SmtpTarget("127.0.0.1", mail.port))
        send_daily_summary(conn, day, SmtpTarget("127.0.0.1", mail.port))  # sent again
        first, again = mail.messages()
    assert (
        first["Date"] and first["Message-ID"] == f"<fraud-summary-{day.isoformat()}@fraud-pipeline>"
    )
    assert again["Message-ID"] == first["Message-ID"]  # the same day's summary, recognisably
    text = first.get_body(("plain",)).get_content()
    assert f"Payments: 1,200 for ${payments['amt'].sum():,.2f}" in text
    assert summary["payments"] == 1200
    assert f"?day={day.isoformat()}" in text  # the report opens on that day
    # How the model did, from the true labels: counted here independently of the report's SQL.
    flagged, fraud = payments["is_fraud_pred"], payments["is_fraud"] == 1
    caught, false_alarms = int((flagged & fraud).sum()), int((flagged & ~fraud).sum())
    assert caught and false_alarms  # both appear, so the figures below can be wrong
    precision, recall = caught / (caught + false_alarms), caught / int(fraud.sum())
    assert (
        f"precision {precision:.1%} ({false_alarms:,} false alarms), recall {recall:.1%} "
        f"({int(fraud.sum()) - caught:,} of {int(fraud.sum()):,} frauds missed)"
    ) in text
    html = first.get_body(("html",)).get_content()
    assert f"<b>{precision:.1%}</b> ({false_alarms:,} false alarms)" in html
