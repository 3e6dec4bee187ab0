"""The morning summary email: yesterday's payments and frauds, from the report's own SQL."""

from __future__ import annotations

from datetime import date
from email.message import EmailMessage
from typing import Any

import psycopg2.extensions

from fraud_pipeline import clock
from fraud_pipeline.alerting.alerts import SmtpTarget, _env, send
from fraud_pipeline.config import Settings, get_settings

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
    message = EmailMessage()
    message["Subject"] = (
        f"[fraud] Morning report {summary['day']}: {summary['frauds']} frauds in {summary['payments']:,} payments"
    )
    message["From"], message["To"] = settings.alert_from, settings.alert_to
    context = {"s": summary, "report_url": settings.report_url}
    message.set_content(_env.get_template("daily_summary.txt.j2").render(**context))
    message.add_alternative(
        _env.get_template("daily_summary.html.j2").render(**context), subtype="html"
    )
    send(message, target or SmtpTarget.from_settings(settings))
    return summary
