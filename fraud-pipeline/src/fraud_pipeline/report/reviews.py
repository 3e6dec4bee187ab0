"""Triage: the analysts' verdicts on alerts, read and written for the report's "To review" page.

The queue is made of cases, one per card episode (migration 046): `review_cases` reads one page
of them, filtered, `review_case` one case's alerts, `case_notes` its reviews; with
`fraud_review_card_payments()` (migration 018) for the card's history, all work as the report
role. A case is claimed (`claim_case`) or assigned by a lead so that two analysts never work it
at once; a verdict on a whole episode (`record_case_verdict`) is one action, refused to anyone
but the case's holder. Verdicts are written as the role `fraud_report_reviewer`
(REVIEW_DATABASE_URL), which may INSERT into `alert_reviews` and nothing else: the trail is
append-only, a later verdict supersedes an earlier one (`v_alert_verdicts`). The analyst's name
is the signed-in user's, passed by the page, never typed; each verdict leaves an audit row in
the same transaction (`security.audit`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Final, Literal

import pandas as pd
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from fraud_pipeline import clock
from fraud_pipeline.config import Settings, get_settings
from fraud_pipeline.ingest.cards import mask_last4
from fraud_pipeline.report.queries import Db, _read, display_table, set_role_password_main
from fraud_pipeline.security import audit
from fraud_pipeline.security.masking import mask_card_numbers
from fraud_pipeline.storage import db
from fraud_pipeline.wording import describe_reasons, flagged_by, merchant_name

REVIEWER_ROLE: Final = "fraud_report_reviewer"
ADMIN_ROLE: Final = "fraud_report_admin"
Verdict = Literal["confirmed_fraud", "false_alarm"]
CONFIRMED: Final[Verdict] = "confirmed_fraud"
FALSE_ALARM: Final[Verdict] = "false_alarm"
VERDICT_WORDS: Final[dict[str, str]] = {CONFIRMED: "Confirmed fraud", FALSE_ALARM: "False alarm"}
CARD_HISTORY_DAYS: Final = 7
MAX_NOTE: Final = 2000  # alert_reviews.note's CHECK
STATUSES: Final = ("open", "reviewed", "all")
KINDS: Final = {"live": "Live alerts", "digest": "Catch-up digests"}


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
    """One alert of a case, as the analyst reads it: masked card, plain merchant, reasons, its
    verdict in force."""

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
    verdict: str | None = None
    live: bool = True  # mailed on its own line (not only counted in a catch-up digest)
    flagged_by: tuple[str, ...] = ()  # the model, rules, lists: as the alert email says


# -- cases: one per card episode, filtered and paged in the database ------------------------------
@dataclass(frozen=True)
class CaseFilter:
    """What the queue shows: `days` back from today (business days, today included), the case's
    status, live alerts or catch-up digests, and some alert of the case within the rest."""

    days: int | None = 7
    status: str = "open"
    kind: str | None = None
    model: str | None = None
    category: str | None = None
    amount_min: float | None = None
    amount_max: float | None = None
    score_min: float | None = None
    search: str | None = None


@dataclass(frozen=True)
class CaseOptions:
    models: list[str]
    categories: list[str]
    max_amount: float


def case_options(conn: Db) -> CaseOptions:
    """What the queue's filters offer (the alerts' model versions, categories, amounts)."""
    rows = _read(conn, "SELECT * FROM fraud_review_case_options()")
    row = rows.iloc[0]
    return CaseOptions(
        list(row["models"]), list(row["categories"]), float(int(row["max_amount"]) + 1)
    )


@dataclass(frozen=True)
class CaseRow:
    """One case of the queue's page, as the analyst reads it."""

    key: str
    card: str
    cardholder: str
    alerts: int
    open_alerts: int
    live: bool
    top_probability: float
    last_time: pd.Timestamp
    merchants: str
    claimed_by: str | None


@dataclass(frozen=True)
class CasePage:
    cases: list[CaseRow]
    matching: int  # every case the filters keep, beyond this page


def review_cases(conn: Db, where: CaseFilter, page: int = 1, size: int = 25) -> CasePage:
    """One page (from 1) of the cases `where` keeps: live ones first, then the riskiest."""
    if where.status not in STATUSES or (where.kind is not None and where.kind not in KINDS):
        raise ValueError(f"unknown status {where.status!r} or kind {where.kind!r}")
    since = None
    if where.days is not None:
        since = clock.day_start(clock.today() - timedelta(days=max(where.days, 1) - 1))
    rows = _read(
        conn,
        "SELECT * FROM fraud_review_cases(CAST(:since AS timestamptz), :status, :kind, :model, "
        ":category, :amount_min, :amount_max, :score_min, :search, :size, :offset)",
        **{  # every filter by its own name; days as the instant they start
            **asdict(where),
            "days": None,
            "since": since,
            "search": (where.search or "").strip() or None,
        },
        size=size,
        offset=(max(page, 1) - 1) * size,
    )
    cases = [
        CaseRow(
            key=str(row.case_key),
            card=mask_last4(str(row.card_last4).strip()),
            cardholder=f"{row.first or ''} {row.last or ''}".strip(),
            alerts=int(row.alerts),
            open_alerts=int(row.open_alerts),
            live=bool(row.live),
            top_probability=float(row.top_probability),
            last_time=pd.Timestamp(row.last_local_time),
            merchants=" · ".join(merchant_name(m) for m in str(row.merchants or "").split(" · ")),
            claimed_by=None if pd.isna(row.claimed_by) else str(row.claimed_by),
        )
        for row in rows.itertuples(index=False)
    ]
    return CasePage(cases, int(rows["matching"].iloc[0]) if len(rows) else 0)


@dataclass(frozen=True)
class Case:
    """A card episode: its alerts oldest first (with their verdicts in force), who holds it."""

    key: str
    alerts: list[Alert]
    claimed_by: str | None

    @property
    def card(self) -> str:
        return self.alerts[0].card

    @property
    def cardholder(self) -> str:
        return self.alerts[0].cardholder

    @property
    def open_trans_nums(self) -> list[str]:
        return [alert.trans_num for alert in self.alerts if alert.verdict is None]

    @property
    def trans_nums(self) -> list[str]:
        return [alert.trans_num for alert in self.alerts]


def review_case(conn: Db, trans_num: str) -> Case | None:
    """The case of any of its alerts (an email's link names one alert), or None."""
    rows = _read(conn, "SELECT * FROM fraud_review_case(:t)", t=trans_num)
    if rows.empty:
        return None
    alerts = [
        Alert(
            trans_num=str(row.trans_num),
            episode=str(row.case_key),
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
            verdict=None if pd.isna(row.verdict) else str(row.verdict),
            live=row.alert_kind != "digest",
            flagged_by=tuple(
                flagged_by(bool(row.is_fraud_pred), row.rule_hits or [], str(row.card_last4))
            ),
        )
        for row in rows.itertuples(index=False)
    ]
    holder = rows["claimed_by"].iloc[0]
    return Case(str(rows["case_key"].iloc[0]), alerts, None if pd.isna(holder) else str(holder))


def case_notes(conn: Db, case_key: str) -> pd.DataFrame:
    """Every review of the case's alerts, superseded ones included, newest first."""
    rows = _read(conn, "SELECT * FROM fraud_review_case_notes(:c)", c=case_key)
    return pd.DataFrame(
        {
            "When": pd.to_datetime(rows["reviewed_at"], utc=True).dt.tz_convert(
                clock.business_tz()
            ),
            "Who": rows["analyst"],
            "Verdict": rows["verdict"].map(verdict_words),
            "Note": rows["note"].fillna(""),
            "Transaction": rows["trans_num"],
        }
    )


class CaseHeld(Exception):
    """The case is claimed by another analyst: they work it, not you."""

    def __init__(self, holder: str) -> None:
        super().__init__(f"claimed by {holder}")
        self.holder = holder


def claim_case(engine: Engine, case_key: str, analyst: str, assigned_by: str | None = None) -> str:
    """`analyst` claims the case (or a lead, `assigned_by`, assigns it to them, whoever held
    it); returns who holds it after, audited in the same transaction. A claim on a case someone
    else holds changes nothing and returns them."""
    by = (assigned_by or analyst).strip()
    with engine.begin() as connection:
        holder = connection.execute(
            text("SELECT fraud_claim_case(:case, :analyst, :by, :force)"),
            {"case": case_key, "analyst": analyst, "by": by, "force": assigned_by is not None},
        ).scalar_one()
        if holder == analyst:
            action = audit.CASE_ASSIGN if assigned_by else audit.CASE_CLAIM
            audit_row(connection, by, action, case_key, analyst)
    return str(holder)


def release_case(engine: Engine, case_key: str, analyst: str, force: bool = False) -> bool:
    """The holder (or, `force`, a lead) lets the case go; audited. Whether it was released."""
    with engine.begin() as connection:
        released = bool(
            connection.execute(
                text("SELECT fraud_release_case(:case, :analyst, :force)"),
                {"case": case_key, "analyst": analyst, "force": force},
            ).scalar_one()
        )
        if released:
            audit_row(connection, analyst, audit.CASE_RELEASE, case_key)
    return released


def record_case_verdict(
    engine: Engine, case_key: str, verdict: Verdict, analyst: str, note: str | None = None
) -> int:
    """One verdict on the whole episode, in one transaction: on its alerts without a verdict
    (on all of them when none is left open). The analyst claims the case in the same
    transaction; a case another analyst holds is refused (CaseHeld), nothing written."""
    case = review_case(engine, case_key)
    if case is None:
        raise ValueError(f"no case {case_key!r}")
    targets = case.open_trans_nums or case.trans_nums
    return record_verdicts(engine, targets, verdict, analyst, note, case_key=case.key)


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
    case_key: str | None = None,
) -> int:
    """Append one review per payment, in one transaction; returns how many were written.

    `engine` must log in as the reviewer role (REVIEW_DATABASE_URL): it can only INSERT, so no
    RETURNING (that would need SELECT on the trail). With `case_key`, the analyst claims that
    case in the same transaction, and a case another analyst holds is refused (CaseHeld).
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
        if case_key is not None:
            holder = connection.execute(
                text("SELECT fraud_claim_case(:case, :analyst, :analyst, false)"),
                {"case": case_key, "analyst": analyst.strip()},
            ).scalar_one()
            if holder != analyst.strip():
                raise CaseHeld(str(holder))
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
