"""The morning summary email: yesterday's payments, frauds and, where the payments carry their
true label (the demo), how the model did: the report's own figures (`report.queries`)."""

from __future__ import annotations

from datetime import date
from typing import Any

import psycopg2.extensions

from fraud_pipeline import clock
from fraud_pipeline.alerting.mail import SmtpTarget, compose, send
from fraud_pipeline.config import Settings, get_settings
from fraud_pipeline.report.queries import day_summary
from fraud_pipeline.wording import format_count, report_link


def summarise(
    conn: psycopg2.extensions.connection, day: date, settings: Settings
) -> dict[str, Any]:
    """The report's own day summary (`report.queries.day_summary`), as plain values."""
    summary = day_summary(conn, day)
    return {
        "day": day.isoformat(),
        "tz": settings.business_tz,
        "payments": summary.payments,
        "amount": summary.amount,
        "frauds": summary.frauds,
        "fraud_amount": summary.amount_at_risk,
        "flag_rate": summary.share_flagged or 0.0,
        "labelled": summary.has_labels,
        "precision": summary.precision,
        "recall": summary.recall,
        "false_alarms": summary.false_alarms,
        "true_frauds": summary.caught + summary.missed,
        "missed": summary.missed,
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
