"""Fraud alert emails: one email per run that found new frauds, each fraud alerted exactly once.

The pending frauds (`is_fraud_pred AND alerted_at IS NULL`) are locked (`FOR UPDATE SKIP LOCKED`,
so a concurrent run cannot take them too), rendered with jinja2 (HTML + plain text), sent over
SMTP, and marked `alerted_at` in the same transaction, committed only once the SMTP server has
accepted the message. SMTP down: the transaction rolls back and the frauds stay pending for the
next run. The Message-ID is derived from the frauds it lists, so a resend would be recognisable.
"""

from __future__ import annotations

import hashlib
import logging
import smtplib
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import jinja2
import psycopg2.extensions

from fraud_pipeline import clock
from fraud_pipeline.config import Settings, get_settings
from fraud_pipeline.ingest.cards import mask_last4

log = logging.getLogger(__name__)

MAX_PER_EMAIL = 500
_env = jinja2.Environment(
    loader=jinja2.PackageLoader("fraud_pipeline.alerting", "templates"),
    autoescape=jinja2.select_autoescape(["html.j2"]),
    undefined=jinja2.StrictUndefined,
)


class AlertError(RuntimeError):
    """The alert could not be sent; the frauds stay pending."""


@dataclass
class SmtpTarget:
    host: str
    port: int
    user: str | None = None
    password: str | None = None
    starttls: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpTarget:
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        return cls(
            settings.smtp_host,
            settings.smtp_port,
            settings.smtp_user,
            password,
            settings.smtp_starttls,
        )


def _reasons_text(reasons: list[dict[str, Any]]) -> str:
    if not reasons:
        return "score above threshold"
    return ", ".join(f"{r['feature']} = {r['value']:.4g}" for r in reasons)


def render(frauds: list[dict[str, Any]], alert_id: str, settings: Settings) -> EmailMessage:
    """The alert email (plain text + HTML); cards appear masked only."""
    rows = [
        {
            **f,
            "card": mask_last4(f["card_last4"]),
            "cardholder": f"{f['first'] or ''} {f['last'] or ''}".strip(),
            "local_time": f["trans_time"].astimezone(settings.tz).strftime("%Y-%m-%d %H:%M:%S %Z"),
            "reasons_text": _reasons_text(f["reasons"]),
        }
        for f in frauds
    ]
    context = {
        "frauds": rows,
        "alert_id": alert_id,
        "report_url": settings.report_url,
        "generated_at": clock.now().strftime("%Y-%m-%d %H:%M %Z"),
    }
    message = EmailMessage()
    total = sum(f["amt"] for f in frauds)
    message["Subject"] = (
        f"[fraud] {len(frauds)} suspected fraud{'s' if len(frauds) != 1 else ''} (${total:,.2f})"
    )
    message["From"] = settings.alert_from
    message["To"] = settings.alert_to
    # The same frauds give the same Message-ID (make_msgid would add time and randomness), so
    # a resend after a lost commit is recognisable and mail clients can deduplicate it.
    message["Message-ID"] = f"<fraud-alert-{alert_id}@fraud-pipeline>"
    message["X-Fraud-Alert-Id"] = alert_id
    message.set_content(_env.get_template("alert.txt.j2").render(**context))
    message.add_alternative(_env.get_template("alert.html.j2").render(**context), subtype="html")
    return message


def send(message: EmailMessage, target: SmtpTarget, timeout: float = 20.0) -> None:
    try:
        with smtplib.SMTP(target.host, target.port, timeout=timeout) as smtp:
            if target.starttls:
                smtp.starttls()
            if target.user:
                smtp.login(target.user, target.password or "")
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as error:
        raise AlertError(f"SMTP {target.host}:{target.port} refused the alert: {error}") from error


_PENDING = """
SELECT trans_num, trans_time, card_last4, first, last, merchant, category, amt::float8,
       fraud_probability, threshold, model_version, reasons
FROM payments_scored
WHERE is_fraud_pred AND alerted_at IS NULL
ORDER BY trans_time, trans_num
LIMIT %s
FOR UPDATE SKIP LOCKED
"""


def alert_pending(
    conn: psycopg2.extensions.connection,
    settings: Settings | None = None,
    target: SmtpTarget | None = None,
) -> dict[str, Any]:
    """Send one email for the pending frauds (if any) and mark them alerted; return a summary."""
    settings = settings or get_settings()
    target = target or SmtpTarget.from_settings(settings)
    sent, emails = 0, 0
    while True:
        with conn, conn.cursor() as cur:
            cur.execute(_PENDING, (MAX_PER_EMAIL,))
            columns = [c.name for c in cur.description]
            frauds = [dict(zip(columns, row, strict=True)) for row in cur.fetchall()]
            if not frauds:
                break
            ids = [f["trans_num"] for f in frauds]
            alert_id = hashlib.sha256("|".join(ids).encode()).hexdigest()[:16]
            try:
                send(render(frauds, alert_id, settings), target)  # rollback: they stay pending
            except AlertError as error:
                log.error("%d frauds not alerted, they stay pending: %s", len(frauds), error)
                raise
            cur.execute(
                "UPDATE payments_scored SET alerted_at = now(), alert_id = %s WHERE trans_num = ANY(%s)",
                (alert_id, ids),
            )
        sent += len(frauds)
        emails += 1
        log.info("alert %s sent for %d frauds", alert_id, len(frauds))
        if len(frauds) < MAX_PER_EMAIL:
            break
    return {"frauds_alerted": sent, "emails": emails, "at": datetime.now(UTC).isoformat()}
