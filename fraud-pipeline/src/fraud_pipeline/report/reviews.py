"""Triage: the analysts' verdicts on alerts, read and written for the report's "To review" page.

Reads go through `fraud_review_queue()` and `fraud_review_card_payments()` (migration 018), so
they work as the report role. Verdicts are written as the role `fraud_report_reviewer`
(REVIEW_DATABASE_URL), which may INSERT into `alert_reviews` and nothing else: the trail is
append-only, a later verdict supersedes an earlier one (`v_alert_verdicts`). The analyst's name
is the signed-in user's, passed by the page, never typed; each verdict leaves an audit row in
the same transaction (`security.audit`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal

import pandas as pd
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from fraud_pipeline.config import Settings, get_settings
from fraud_pipeline.ingest.cards import mask_last4
from fraud_pipeline.report.queries import Db, _read, display_table, set_role_password_main
from fraud_pipeline.report.wording import describe_reasons, merchant_name
from fraud_pipeline.security import audit
from fraud_pipeline.security.masking import mask_card_numbers
from fraud_pipeline.storage import db

REVIEWER_ROLE: Final = "fraud_report_reviewer"
ADMIN_ROLE: Final = "fraud_report_admin"
Verdict = Literal["confirmed_fraud", "false_alarm"]
CONFIRMED: Final[Verdict] = "confirmed_fraud"
FALSE_ALARM: Final[Verdict] = "false_alarm"
VERDICT_WORDS: Final[dict[str, str]] = {CONFIRMED: "Confirmed fraud", FALSE_ALARM: "False alarm"}
CARD_HISTORY_DAYS: Final = 7
QUEUE_CARDS: Final = 10  # cards per screen: a morning's triage, riskiest first
MAX_NOTE: Final = 2000  # alert_reviews.note's CHECK


# -- connection and the reviewer's password --------------------------------------------------------
def admin_database_url(settings: Settings | None = None) -> str:
    """ADMIN_DATABASE_URL, else the app database as `fraud_report_admin` (accounts, audit)."""
    settings = settings or get_settings()
    return settings.admin_database_url or db.as_user(db.database_url(settings), ADMIN_ROLE)


def review_database_url(settings: Settings | None = None) -> str:
    """REVIEW_DATABASE_URL, else the app database as the reviewer role (trust auth in dev)."""
    settings = settings or get_settings()
    if settings.review_database_url:
        return settings.review_database_url
    return db.as_user(db.database_url(settings), REVIEWER_ROLE)


def set_reviewer_password_main(settings: Settings | None = None) -> int:
    """`fraud-pipeline report set-reviewer-password`: the password is REVIEW_DATABASE_URL's own."""
    settings = settings or get_settings()
    return set_role_password_main(
        REVIEWER_ROLE, settings.review_database_url, "REVIEW_DATABASE_URL", settings
    )


# -- the queue -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Alert:
    """One unreviewed alert, as the analyst reads it: masked card, plain merchant, reasons."""

    trans_num: str
    episode: str
    time: pd.Timestamp
    card: str
    cardholder: str
    merchant: str
    category: str
    amount: float
    place: str
    probability: float
    model_version: str
    reasons: list[str]


@dataclass(frozen=True)
class Episode:
    """One card's unreviewed alerts, riskiest first: what a bulk verdict applies to."""

    key: str
    alerts: list[Alert]

    @property
    def trans_nums(self) -> list[str]:
        return [alert.trans_num for alert in self.alerts]

    @property
    def card(self) -> str:
        return self.alerts[0].card


@dataclass(frozen=True)
class Queue:
    """The riskiest cards' episodes, and how many alerts and cards wait in all."""

    episodes: list[Episode]
    alerts: int
    cards: int


def review_queue(conn: Db, max_cards: int = QUEUE_CARDS) -> Queue:
    """Alerted payments with no verdict, grouped by card, the riskiest card first."""
    rows = _read(conn, "SELECT * FROM fraud_review_queue(:n)", n=max_cards)
    episodes: dict[str, list[Alert]] = {}
    for row in rows.itertuples(index=False):
        episodes.setdefault(str(row.episode), []).append(
            Alert(
                trans_num=str(row.trans_num),
                episode=str(row.episode),
                time=pd.Timestamp(row.trans_local_time),
                card=mask_last4(str(row.card_last4).strip()),
                cardholder=f"{row.first or ''} {row.last or ''}".strip(),
                merchant=merchant_name(str(row.merchant)),
                category=str(row.category),
                amount=float(row.amt),
                place=", ".join(str(part) for part in (row.city, row.state) if part),
                probability=float(row.fraud_probability),
                model_version=str(row.model_version),
                reasons=describe_reasons(row.reasons),
            )
        )
    return Queue(
        episodes=[Episode(key, alerts) for key, alerts in episodes.items()],
        alerts=int(rows["queued_alerts"].iloc[0]) if len(rows) else 0,
        cards=int(rows["queued_cards"].iloc[0]) if len(rows) else 0,
    )


def card_payments(conn: Db, trans_num: str, days: int = CARD_HISTORY_DAYS) -> pd.DataFrame:
    """The alert's card: its payments from `days` before the alert on, newest first, masked."""
    rows = _read(
        conn,
        "SELECT * FROM fraud_review_card_payments(:trans_num, :days)",
        trans_num=trans_num,
        days=days,
    )
    table = display_table(rows, with_reasons=False).drop(columns=["Cardholder", "Model"])
    table.insert(
        table.columns.get_loc("Transaction"), "Verdict", rows["verdict"].map(verdict_words)
    )
    return table


def verdict_words(verdict: str | None) -> str:
    """'confirmed_fraud' -> 'Confirmed fraud'; no verdict -> ''."""
    return VERDICT_WORDS.get(verdict or "", "")


# -- verdicts --------------------------------------------------------------------------------------
def record_verdicts(
    engine: Engine,
    trans_nums: Iterable[str],
    verdict: Verdict,
    analyst: str,
    note: str | None = None,
) -> int:
    """Append one review per payment, in one transaction; returns how many were written.

    `engine` must log in as the reviewer role (REVIEW_DATABASE_URL): it can only INSERT, so no
    RETURNING (that would need SELECT on the trail).
    """
    if verdict not in VERDICT_WORDS:
        raise ValueError(f"unknown verdict {verdict!r}")
    if not analyst.strip():
        raise ValueError("a verdict needs the signed-in analyst's name")
    note = mask_card_numbers((note or "").strip()[:MAX_NOTE]) or None
    params = [
        {"trans_num": t, "verdict": verdict, "note": note, "analyst": analyst.strip()}
        for t in dict.fromkeys(trans_nums)
    ]
    if not params:
        return 0
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO alert_reviews (trans_num, verdict, note, analyst) "
                "VALUES (:trans_num, :verdict, :note, :analyst)"
            ),
            params,
        )
        for param in params:  # the audit row lands with the verdict, or neither does
            audit_row(connection, analyst.strip(), audit.VERDICT, str(param["trans_num"]), verdict)
    return len(params)


def audit_row(
    connection: Connection, actor: str, action: str, target: str = "", detail: str = ""
) -> None:
    """One audit row through `fraud_audit_append` (every report role may call it)."""
    connection.execute(
        text("SELECT fraud_audit_append(:actor, :action, :target, CAST(:detail AS jsonb), '')"),
        {
            "actor": actor,
            "action": action,
            "target": mask_card_numbers(target),
            "detail": json.dumps({"what": mask_card_numbers(detail)} if detail else {}),
        },
    )
