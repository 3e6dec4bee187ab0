"""The morning summary email: yesterday's payments and frauds, from the report's own SQL."""

from __future__ import annotations

from datetime import date
from typing import Any

import psycopg2.extensions

from fraud_pipeline import clock
from fraud_pipeline.alerting.mail import SmtpTarget, compose, send
from fraud_pipeline.config import Settings, get_settings
from fraud_pipeline.report.wording import format_count, report_link

_SUMMARY = """
SELECT count(*), coalesce(sum(amt), 0)::float8,
       count(*) FILTER (WHERE is_fraud_pred), coalesce(sum(amt) FILTER (WHERE is_fraud_pred), 0)::float8,
       count(is_fraud), count(*) FILTER (WHERE is_fraud = 1),
       count(*) FILTER (WHERE is_fraud = 1 AND NOT is_fraud_pred)
FROM fraud_report_for_day(%s)
"""


def summarise(
    conn: psycopg2.extensions.connection, day: date, settings: Settings
) -> dict[str, Any]:
    with conn.cursor() as cur:
        cur.execute(_SUMMARY, (day,))
        payments, amount, frauds, fraud_amount, labelled, true_frauds, missed = cur.fetchone()
    return {
        "day": day.isoformat(),
        "tz": settings.business_tz,
        "payments": payments,
        "amount": amount,
        "frauds": frauds,
        "fraud_amount": fraud_amount,
        "flag_rate": frauds / payments if payments else 0.0,
        "labelled": labelled > 0,
        "true_frauds": true_frauds,
        "missed": missed,
    }


def send_daily_summary(
    conn: psycopg2.extensions.connection, day: date | None = None, target: SmtpTarget | None = None
) -> dict[str, Any]:
    """Email the summary of `day` (default: yesterday in the business time zone)."""
    settings = get_settings()
    day = day or clock.yesterday()
    summary = summarise(conn, day, settings)
    subject = (
        f"[fraud] Morning report {summary['day']}: {format_count(summary['frauds'])} frauds "
        f"in {format_count(summary['payments'])} payments"
    )
    context = {"s": summary, "report_url": report_link(settings.report_url, day)}
    # One id per day: a re-sent summary of the same day is recognisably the same email.
    message = compose(
        settings, subject, f"fraud-summary-{day.isoformat()}", "daily_summary", context
    )
    send(message, target or SmtpTarget.from_settings(settings))
    return summary
