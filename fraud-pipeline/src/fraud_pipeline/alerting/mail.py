"""What every email of the pipeline shares: the templates, the headers and the SMTP send.

Every message gets `Date` (the business clock, so a frozen test clock shows in it) and a
`Message-ID` derived from what it is about (the frauds it lists, the day it summarises): the
same email sent again after a lost commit carries the same id, and mail clients can
deduplicate it; such a send also carries `X-Fraud-Possible-Resend` and "[possible resend]" in
its subject (`deliver`).
"""

from __future__ import annotations

import hashlib
import logging
import smtplib
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any, Literal

import jinja2
import psycopg2.extensions

from fraud_pipeline import clock, wording
from fraud_pipeline.config import Settings
from fraud_pipeline.security.masking import mask_card_numbers

log = logging.getLogger(__name__)

templates = jinja2.Environment(
    loader=jinja2.PackageLoader("fraud_pipeline.alerting", "templates"),
    autoescape=jinja2.select_autoescape(["html.j2"]),
    undefined=jinja2.StrictUndefined,
)
templates.filters.update(
    money=wording.format_money, count=wording.format_count, percent=wording.format_percent
)


class AlertError(RuntimeError):
    """The email could not be sent; what it covers stays pending."""


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


def by_risk(fraud: dict[str, Any]) -> tuple[float, datetime, str]:
    """The order payments are listed in an email: the riskiest first, then the oldest, then by
    payment id (stable)."""
    return (-float(fraud["fraud_probability"]), fraud["trans_time"], str(fraud["trans_num"]))


def email_id(trans_nums: list[str]) -> str:
    """The id of an email covering these payments: the same payments, the same id."""
    return hashlib.sha256("|".join(sorted(trans_nums)).encode()).hexdigest()[:16]


def compose(
    settings: Settings, subject: str, message_id: str, template: str, context: dict[str, Any]
) -> EmailMessage:
    """A plain-text + HTML email from `<template>.txt.j2` and `<template>.html.j2`; its subject
    and both bodies masked (`mask_card_numbers`) whatever the context held."""
    message = EmailMessage()
    message["Subject"] = mask_card_numbers(subject)
    message["From"] = settings.alert_from
    message["To"] = settings.alert_to
    message["Date"] = format_datetime(clock.now())
    message["Message-ID"] = f"<{message_id}@fraud-pipeline>"
    text, html = (templates.get_template(f"{template}.{kind}.j2") for kind in ("txt", "html"))
    message.set_content(mask_card_numbers(text.render(**context)))
    message.add_alternative(mask_card_numbers(html.render(**context)), subtype="html")
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


POSSIBLE_RESEND_HEADER = "X-Fraud-Possible-Resend"
POSSIBLE_RESEND_SUBJECT = "[possible resend] "


def _own_transaction(cur: psycopg2.extensions.cursor) -> psycopg2.extensions.connection:
    """A second connection to the caller's database: what it commits survives the caller's
    rollback."""
    info = cur.connection.info
    return psycopg2.connect(**info.dsn_parameters, password=info.password)


def _record_attempt(cur: psycopg2.extensions.cursor, email_id: str, kind: str) -> bool:
    """Note (committed at once) that `email_id` is about to be sent; True when an earlier send
    of it may have been accepted (its state was still 'sending')."""
    conn = _own_transaction(cur)
    try:
        with conn, conn.cursor() as own:
            own.execute("SELECT state FROM alert_sends WHERE email_id = %s FOR UPDATE", (email_id,))
            before = own.fetchone()
            resend = before is not None and before[0] != "refused"
            own.execute(
                "INSERT INTO alert_sends (email_id, kind, state) VALUES (%s, %s, 'sending') "
                "ON CONFLICT (email_id) DO UPDATE SET state = 'sending', "
                "attempts = alert_sends.attempts + 1, last_attempt_at = now(), "
                "resends = alert_sends.resends + %s",
                (email_id, kind, int(resend)),
            )
    finally:
        conn.close()
    return resend


def _record_refusal(cur: psycopg2.extensions.cursor, email_id: str) -> None:
    conn = _own_transaction(cur)
    try:
        with conn, conn.cursor() as own:
            own.execute("UPDATE alert_sends SET state = 'refused' WHERE email_id = %s", (email_id,))
    finally:
        conn.close()


def mark_possible_resend(message: EmailMessage) -> None:
    """The header and the subject marker of a send that may repeat an earlier one."""
    message[POSSIBLE_RESEND_HEADER] = "yes"  # an earlier send of this Message-ID may have arrived
    subject = str(message["Subject"])
    if not subject.startswith(POSSIBLE_RESEND_SUBJECT):
        message.replace_header("Subject", POSSIBLE_RESEND_SUBJECT + subject)


def deliver(
    cur: psycopg2.extensions.cursor,
    message: EmailMessage,
    target: SmtpTarget,
    trans_nums: list[str],
    kind: Literal["alert", "digest"],
) -> bool:
    """Send, then mark the payments alerted by this email inside the caller's transaction.

    The caller holds their rows (`FOR UPDATE SKIP LOCKED`) and commits only after this returns:
    the SMTP server accepted the message. It refused: AlertError, the caller rolls back and the
    frauds stay pending for the next run. Exactly once, but for one window: the server accepted
    the message and the caller's commit failed. The next run sends it again, with the same
    Message-ID, marked as a possible resend (`alert_sends` knew it was being sent) and counted.
    Returns whether this send was such a possible resend.
    """
    email_id = message["X-Fraud-Alert-Id"] or message["X-Fraud-Digest-Id"]
    resend = _record_attempt(cur, email_id, kind)
    if resend:
        mark_possible_resend(message)
        log.warning(
            "%s %s may repeat an earlier send (its commit did not happen): sent again, marked "
            "as a possible resend",
            kind,
            email_id,
        )
    try:
        send(message, target)
    except AlertError as error:
        _record_refusal(cur, email_id)
        what = "frauds not alerted" if kind == "alert" else "old frauds not summarised"
        log.error("%d %s, they stay pending: %s", len(trans_nums), what, error)
        raise
    cur.execute(
        "UPDATE payments_scored SET alerted_at = now(), alert_id = %s, alert_kind = %s "
        "WHERE trans_num = ANY(%s)",
        (email_id, kind, trans_nums),
    )
    cur.execute("UPDATE alert_sends SET state = 'sent' WHERE email_id = %s", (email_id,))
    return resend


def resends_since(cur: psycopg2.extensions.cursor, since: Any) -> int:
    """Emails sent again as possible resends whose last send is after `since`."""
    cur.execute(
        "SELECT coalesce(sum(resends), 0) FROM alert_sends WHERE resends > 0 "
        "AND last_attempt_at >= %s",
        (since,),
    )
    row = cur.fetchone()
    return int(row[0]) if row else 0
