"""Catch-up digests: frauds found late are summarised in one email, not alerted as new.

A back-fill (yesterday on the first start of the day) or the DAG catching up after downtime
scores payments long after they were made. Pending frauds older than ALERT_MAX_AGE_MIN (against
`clock.now()`) are not news an analyst can act on one by one: they wait until the catch-up is
over and then go out together in one digest (counts and amounts per day and category, links to
the report; what flagged them, in the live alert's words, counted over all and said for each
payment — the LISTED riskiest, the rest in the To review queue), marked `alerted_at` with `alert_kind = 'digest'` in the transaction that sent it,
exactly as alerts are: a payment in a digest is never alerted nor summarised again, and an SMTP
failure leaves them all pending for the next try.

When is a catch-up over? A back-fill holds CATCH_UP_LOCK (shared, so back-fills may overlap)
for its whole length (`catching_up`); a digest needs it exclusively, so none is sent while any
back-fill runs. The DAG's own catch-up is over when the high-water mark is within
ALERT_MAX_AGE_MIN of now (`storage.watermark.lag`; windowed payments API only, the `current`
mode has no mark). A catch-up that ends near the boundary may leave a few frauds that turn old
after it: a second, small digest.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any, Final, Literal, TypeAlias

import psycopg2
import psycopg2.extensions

from fraud_pipeline import clock
from fraud_pipeline.alerting.mail import SmtpTarget, by_risk, compose, deliver, email_id
from fraud_pipeline.config import Settings
from fraud_pipeline.ingest.cards import mask_last4
from fraud_pipeline.storage import watermark
from fraud_pipeline.wording import (
    case_link,
    flagged_by,
    format_count,
    format_money,
    merchant_name,
    queue_link,
    report_link,
)

log = logging.getLogger(__name__)

# Payments listed one by one in a digest: a catch-up of days can hold thousands (an email of
# megabytes); the counts cover them all and the queue lists the rest.
LISTED: Final = 200
CATCH_UP_LOCK: Final = 0x46524355  # "FRCU"
When: TypeAlias = Literal["auto", "now", "hold"]


@contextmanager
def catching_up(conn: psycopg2.extensions.connection) -> Iterator[None]:
    """Hold off every digest while the block runs (a back-fill): one digest at its end."""
    with conn, conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_lock_shared(%s)", (CATCH_UP_LOCK,))
    try:
        yield
    finally:
        try:
            with conn, conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_unlock_shared(%s)", (CATCH_UP_LOCK,))
        except psycopg2.Error:  # the connection is gone, and the session's lock with it
            pass


_OLD = """
SELECT trans_num, trans_time, category, amt::float8, card_last4, merchant, fraud_probability,
       is_fraud_pred, rule_hits
FROM payments_scored
WHERE (is_fraud_pred OR rule_flagged) AND alerted_at IS NULL AND trans_time < %s
ORDER BY trans_time, trans_num
FOR UPDATE SKIP LOCKED
"""


def _still_catching_up(
    cur: psycopg2.extensions.cursor, settings: Settings, when: When
) -> str | None:
    """Why the old frauds must wait (a back-fill runs, the DAG is behind), or None."""
    cur.execute("SELECT pg_try_advisory_xact_lock(%s)", (CATCH_UP_LOCK,))
    row = cur.fetchone()
    if not (row and row[0]):
        return "a back-fill is running"
    if when == "auto" and settings.payments_api_mode == "windowed":  # `current`: no mark
        behind = watermark.lag(cur, clock.now())
        if behind is not None and behind > timedelta(minutes=settings.alert_max_age_min):
            return f"the pipeline is {behind.total_seconds() / 60:,.0f} min behind"
    return None


def summarise_old(
    conn: psycopg2.extensions.connection,
    settings: Settings,
    target: SmtpTarget,
    since: datetime,
    when: When,
) -> int:
    """One digest for the pending frauds made before `since`, once the catch-up is over.

    `when`: "auto" (the DAG's alert step: once no back-fill runs and the mark is recent),
    "now" (a back-fill's end: unless another back-fill runs), "hold" (never). Returns how many
    frauds the digest covered (0: none sent).
    """
    if when == "hold":
        return 0
    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT 1 FROM payments_scored WHERE (is_fraud_pred OR rule_flagged) "
            "AND alerted_at IS NULL "
            "AND trans_time < %s LIMIT 1",
            (since,),
        )
        if cur.fetchone() is None:
            return 0
        wait = _still_catching_up(cur, settings, when)
        if wait:
            log.info("old frauds wait for the end of the catch-up (one digest): %s", wait)
            return 0
        cur.execute(_OLD, (since,))
        columns = [c.name for c in cur.description]
        frauds = [dict(zip(columns, row, strict=True)) for row in cur.fetchall()]
        if not frauds:
            return 0
        ids = [f["trans_num"] for f in frauds]
        digest_id = email_id(ids)
        deliver(cur, render(frauds, digest_id, settings), target, ids, "digest")
    log.info("catch-up digest %s sent for %d old frauds", digest_id, len(frauds))
    return len(frauds)


def _totals(frauds: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    groups: dict[Any, list[float]] = defaultdict(list)
    for fraud in frauds:
        groups[fraud[key]].append(fraud["amt"])
    return [
        {"name": name, "frauds": len(amounts), "amount": sum(amounts)}
        for name, amounts in groups.items()
    ]


def _flagged(fraud: dict[str, Any]) -> list[str]:
    return flagged_by(fraud["is_fraud_pred"], fraud["rule_hits"] or [], fraud["card_last4"])


def _listed(frauds: list[dict[str, Any]], settings: Settings) -> list[dict[str, Any]]:
    """The LISTED riskiest payments as the alert email shows them: masked card, what flagged it."""
    return [
        {
            **f,
            "card": mask_last4(f["card_last4"]),
            "merchant": merchant_name(f["merchant"]),
            "local_time": f["trans_time"].astimezone(settings.tz).strftime("%Y-%m-%d %H:%M %Z"),
            "case_url": case_link(settings.report_url, str(f["trans_num"])),
        }
        for f in sorted(frauds, key=by_risk)[:LISTED]
    ]


def render(frauds: list[dict[str, Any]], digest_id: str, settings: Settings) -> EmailMessage:
    """The digest: how many, how much, when, per day (with its report), per category, what
    flagged them, and each payment (the LISTED riskiest) with what flagged it."""
    for fraud in frauds:
        fraud["day"] = clock.business_day(fraud["trans_time"])
        fraud["flagged_by"] = _flagged(fraud)
    flags = Counter(flag for fraud in frauds for flag in fraud["flagged_by"])
    days = sorted(_totals(frauds, "day"), key=lambda d: d["name"])
    for day in days:
        day["link"] = report_link(settings.report_url, day["name"])
    categories = sorted(_totals(frauds, "category"), key=lambda c: (-c["frauds"], c["name"]))
    times = [f["trans_time"].astimezone(settings.tz) for f in frauds]
    total = format_money(sum(f["amt"] for f in frauds))
    context = {
        "count": len(frauds),
        "total": total,
        "first": min(times).strftime("%Y-%m-%d %H:%M %Z"),
        "last": max(times).strftime("%Y-%m-%d %H:%M %Z"),
        "max_age_min": settings.alert_max_age_min,
        "days": days,
        "categories": categories,
        "flags": sorted(flags.items(), key=lambda item: (-item[1], item[0])),
        "listed": _listed(frauds, settings),
        "unlisted": max(len(frauds) - LISTED, 0),
        "queue_url": queue_link(settings.report_url),
        "digest_id": digest_id,
        "report_url": settings.report_url,
        "generated_at": clock.now().strftime("%Y-%m-%d %H:%M %Z"),
    }
    subject = (
        f"[fraud] Catch-up: {format_count(len(frauds))} frauds ({total}) found in older "
        "payments, not alerted one by one"
    )
    message = compose(settings, subject, f"fraud-digest-{digest_id}", "digest", context)
    message["X-Fraud-Digest-Id"] = digest_id  # not an alert: the bench times X-Fraud-Alert-Id
    return message
