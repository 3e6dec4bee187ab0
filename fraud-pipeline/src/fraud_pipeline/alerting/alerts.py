"""Fraud alert emails: one email per run that found new frauds, each fraud alerted exactly once.

The pending live frauds (flagged by the model, `is_fraud_pred`, or by an enabled rule or a
block list, `rule_flagged`; `alerted_at IS NULL`; each alert says which), no older than
ALERT_MAX_AGE_MIN) are locked (`FOR UPDATE SKIP LOCKED`, so a concurrent run cannot take them
too), rendered with jinja2 (HTML + plain text), riskiest first, sent over SMTP, and marked
`alerted_at` in the same transaction, committed only once the SMTP server has accepted the
message. SMTP down: the transaction rolls back and the frauds stay pending for the next run.
Older pending frauds (a back-fill, a catch-up) go into one digest instead (`digest.py`).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import psycopg2.extensions

from fraud_pipeline import clock
from fraud_pipeline.alerting import digest
from fraud_pipeline.alerting.mail import (
    AlertError,
    SmtpTarget,
    by_risk,
    compose,
    deliver,
    email_id,
)
from fraud_pipeline.config import Settings, get_settings
from fraud_pipeline.ingest.cards import mask_last4
from fraud_pipeline.wording import (
    case_link,
    describe_reasons,
    flagged_by,
    format_count,
    format_money,
    merchant_name,
)

__all__ = ["MAX_PER_EMAIL", "AlertError", "SmtpTarget", "alert_pending", "render"]

log = logging.getLogger(__name__)

MAX_PER_EMAIL = 500


def render(frauds: list[dict[str, Any]], alert_id: str, settings: Settings) -> EmailMessage:
    """The alert email (plain text + HTML), riskiest first; cards appear masked only."""
    rows = [
        {
            **f,
            "card": mask_last4(f["card_last4"]),
            "cardholder": f"{f['first'] or ''} {f['last'] or ''}".strip(),
            "merchant": merchant_name(f["merchant"]),
            "local_time": f["trans_time"].astimezone(settings.tz).strftime("%Y-%m-%d %H:%M:%S %Z"),
            "why": describe_reasons(f["reasons"]) or ["score above the threshold"],
            "flagged_by": flagged_by(
                f.get("is_fraud_pred", True), f.get("rule_hits") or [], f["card_last4"]
            ),
            "case_url": case_link(settings.report_url, str(f["trans_num"])),
        }
        for f in sorted(frauds, key=by_risk)
    ]
    context = {
        "frauds": rows,
        "alert_id": alert_id,
        "report_url": settings.report_url,
        "generated_at": clock.now().strftime("%Y-%m-%d %H:%M %Z"),
    }
    total = format_money(sum(f["amt"] for f in frauds))
    plural = "s" if len(frauds) != 1 else ""
    subject = f"[fraud] {format_count(len(frauds))} suspected fraud{plural} ({total})"
    # The same frauds give the same Message-ID (make_msgid would add time and randomness), so
    # a resend after a lost commit is recognisable and mail clients can deduplicate it.
    message = compose(settings, subject, f"fraud-alert-{alert_id}", "alert", context)
    message["X-Fraud-Alert-Id"] = alert_id
    return message


_PENDING = """
SELECT trans_num, trans_time, card_last4, first, last, merchant, category, amt::float8,
       fraud_probability, threshold, model_version, reasons, is_fraud_pred, rule_hits
FROM payments_scored
WHERE (is_fraud_pred OR rule_flagged) AND alerted_at IS NULL AND trans_time >= %s
ORDER BY fraud_probability DESC, trans_time, trans_num
LIMIT %s
FOR UPDATE SKIP LOCKED
"""


def alert_pending(
    conn: psycopg2.extensions.connection,
    settings: Settings | None = None,
    target: SmtpTarget | None = None,
    *,
    old: digest.When = "auto",
) -> dict[str, Any]:
    """Alert the pending live frauds (one email per 500), then the old ones (`digest`).

    `old`: when the frauds older than ALERT_MAX_AGE_MIN are summarised ("auto": once the
    pipeline has caught up; "now": at the end of a back-fill; "hold": not yet, a back-fill is
    still going). Returns what was sent.
    """
    settings = settings or get_settings()
    target = target or SmtpTarget.from_settings(settings)
    since = clock.now() - timedelta(minutes=settings.alert_max_age_min)
    sent, emails, resends = 0, 0, 0
    while True:
        with conn, conn.cursor() as cur:
            cur.execute(_PENDING, (since, MAX_PER_EMAIL))
            columns = [c.name for c in cur.description]
            frauds = [dict(zip(columns, row, strict=True)) for row in cur.fetchall()]
            if not frauds:
                break
            ids = [f["trans_num"] for f in frauds]
            alert_id = email_id(ids)
            resends += deliver(cur, render(frauds, alert_id, settings), target, ids, "alert")
        sent += len(frauds)
        emails += 1
        log.info("alert %s sent for %d frauds", alert_id, len(frauds))
        if len(frauds) < MAX_PER_EMAIL:
            break
    summarised = digest.summarise_old(conn, settings, target, since, old)
    return {
        "frauds_alerted": sent,
        "emails": emails,
        "possible_resends": resends,
        "frauds_summarised": summarised,
        "digests": int(summarised > 0),
        "at": datetime.now(UTC).isoformat(),
    }
