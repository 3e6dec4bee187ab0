"""The morning report's data: every number, table and chart aggregate the Streamlit page shows.

Every read goes through `fraud_report_for_day(day)` (the SQL definition behind
`v_daily_fraud_report`) and `fraud_report_freshness()`, so the page runs as the role
`fraud_report_reader`, which can read nothing else. The page (fraud-dashboard/app.py) only lays
these results out; they are tested here against independent SQL.
"""

from __future__ import annotations

import io
import math
import sys
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from itertools import pairwise
from typing import Any, Final, TypeAlias

import pandas as pd
import psycopg2.extensions
from psycopg2 import sql
from sqlalchemy import text
from sqlalchemy.dialects.postgresql.psycopg2 import dialect as psycopg2_dialect
from sqlalchemy.engine import Connection, Engine, make_url

from fraud_pipeline.config import Settings, get_settings
from fraud_pipeline.ingest.cards import mask_last4
from fraud_pipeline.security.masking import mask_card_numbers
from fraud_pipeline.storage import db
from fraud_pipeline.wording import (
    describe_reasons,
    format_count,
    format_money,
    format_percent,
    format_signed_money,
    merchant_name,
)

# The report's engine, or a task's own psycopg2 connection (the morning summary's DAG task).
Db: TypeAlias = Engine | Connection | psycopg2.extensions.connection

REPORT_ROLE: Final = "fraud_report_reader"

FRAUD_LABEL: Final = "Flagged as fraud"
LEGIT_LABEL: Final = "Legitimate"
# Amount bands of the distribution chart (upper bounds, dollars); the last band is open.
AMOUNT_BOUNDS: Final[tuple[int, ...]] = (10, 25, 50, 100, 250, 500, 1000)


# -- connection and login ------------------------------------------------------------------------
def report_database_url(settings: Settings | None = None) -> str:
    """REPORT_DATABASE_URL, else the app database as the read-only role (trust auth in dev)."""
    settings = settings or get_settings()
    if settings.report_database_url:
        return settings.report_database_url
    return db.as_user(db.database_url(settings), REPORT_ROLE)


def sqlalchemy_url(url: str) -> str:
    """A plain postgresql:// URL pinned to psycopg2, the driver the whole project uses."""
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg2")
    return parsed.render_as_string(hide_password=False)


def set_role_password(
    conn: psycopg2.extensions.connection, role: str, password: str | None
) -> None:
    """Give a report role its login password (ops, once per environment; None removes it)."""
    statement = sql.SQL("ALTER ROLE {} PASSWORD {}").format(
        sql.Identifier(role), sql.Literal(password)
    )
    with conn, conn.cursor() as cur:
        cur.execute(statement)


def set_reader_password(conn: psycopg2.extensions.connection, password: str | None) -> None:
    set_role_password(conn, REPORT_ROLE, password)


def set_role_password_main(
    role: str, role_url: str | None, variable: str, settings: Settings | None = None
) -> int:
    """Let `role` log in with the password of its own URL setting (`variable`), as the owner."""
    settings = settings or get_settings()
    password = make_url(role_url or "postgresql://").password
    if not password:
        print(f"{variable} must hold {role}'s password", file=sys.stderr)
        return 2
    conn = db.connect(db.database_url(settings))
    try:
        set_role_password(conn, role, str(password))
    finally:
        conn.close()
    print(f"{role} can now log in with the password of {variable}")
    return 0


def set_reader_password_main(settings: Settings | None = None) -> int:
    """`fraud-pipeline report set-reader-password`: the password is REPORT_DATABASE_URL's own."""
    settings = settings or get_settings()
    return set_role_password_main(
        REPORT_ROLE, settings.report_database_url, "REPORT_DATABASE_URL", settings
    )


def _read(conn: Db, query: str, **params: Any) -> pd.DataFrame:
    """Run one query; errors stay SQLAlchemy's own, so the page can explain them."""
    if isinstance(conn, Engine):
        with conn.connect() as connection:
            return _read(connection, query, **params)
    if isinstance(conn, psycopg2.extensions.connection):  # the same SQL, compiled for psycopg2
        statement = str(text(query).compile(dialect=psycopg2_dialect()))
        with conn.cursor() as cur:
            cur.execute(statement, params)
            return pd.DataFrame(cur.fetchall(), columns=[c.name for c in cur.description or ()])
    result = conn.execute(text(query), params)
    return pd.DataFrame(result.fetchall(), columns=list(result.keys()))


# -- KPIs and model performance ------------------------------------------------------------------
@dataclass(frozen=True)
class DaySummary:
    """One day's totals; the label counts only cover payments whose true label is known."""

    day: date
    payments: int
    frauds: int
    amount: float
    amount_at_risk: float
    labelled: int
    caught: int
    false_alarms: int
    missed: int
    missed_amount: float

    @property
    def share_flagged(self) -> float | None:
        return self.frauds / self.payments if self.payments else None

    @property
    def has_labels(self) -> bool:
        return self.labelled > 0

    @property
    def precision(self) -> float | None:
        return label_precision(self.labelled, self.caught, self.false_alarms)

    @property
    def recall(self) -> float | None:
        return label_recall(self.labelled, self.caught, self.missed)


def label_precision(labelled: int, caught: int, false_alarms: int) -> float | None:
    """Flagged payments that were true frauds, among the labelled; None without labels."""
    flagged = caught + false_alarms
    return caught / flagged if labelled and flagged else None


def label_recall(labelled: int, caught: int, missed: int) -> float | None:
    """True frauds the model flagged, among the labelled; None without labels."""
    actual = caught + missed
    return caught / actual if labelled and actual else None


_SUMMARY_SQL = """
SELECT count(*) AS payments,
       count(*) FILTER (WHERE is_fraud_pred) AS frauds,
       coalesce(sum(amt), 0) AS amount,
       coalesce(sum(amt) FILTER (WHERE is_fraud_pred), 0) AS amount_at_risk,
       count(is_fraud) AS labelled,
       count(*) FILTER (WHERE is_fraud = 1 AND is_fraud_pred) AS caught,
       count(*) FILTER (WHERE is_fraud = 0 AND is_fraud_pred) AS false_alarms,
       count(*) FILTER (WHERE is_fraud = 1 AND NOT is_fraud_pred) AS missed,
       coalesce(sum(amt) FILTER (WHERE is_fraud = 1 AND NOT is_fraud_pred), 0) AS missed_amount
FROM fraud_report_for_day(:day)
"""


def day_summary(conn: Db, day: date) -> DaySummary:
    row = _read(conn, _SUMMARY_SQL, day=day).iloc[0]
    counts = ("payments", "frauds", "labelled", "caught", "false_alarms", "missed")
    return DaySummary(
        day=day,
        **{name: int(row[name]) for name in counts},
        amount=float(row["amount"]),
        amount_at_risk=float(row["amount_at_risk"]),
        missed_amount=float(row["missed_amount"]),
    )


@dataclass(frozen=True)
class Kpi:
    """One headline number and its change against the day before, ready to display."""

    label: str
    value: str
    delta: str | None
    help: str
    # "inverse": a rise is bad (frauds); "normal": a rise is neutral-good (payments)
    delta_color: str = "normal"


def kpis(current: DaySummary, previous: DaySummary) -> list[Kpi]:
    """Payments, frauds detected, amount at risk, share flagged; each against the day before."""
    vs = f"vs {previous.day:%a %d %b}"
    compare = previous.payments > 0
    share, share_before = current.share_flagged, previous.share_flagged
    return [
        Kpi(
            "Payments",
            format_count(current.payments),
            f"{format_change(current.payments, previous.payments)} {vs}" if compare else None,
            "All payments scored that day (business time zone).",
        ),
        Kpi(
            "Frauds detected",
            format_count(current.frauds),
            f"{current.frauds - previous.frauds:+,} {vs}" if compare else None,
            "Payments the model flagged (probability ≥ its threshold).",
            "inverse",
        ),
        Kpi(
            "Amount at risk",
            format_money(current.amount_at_risk),
            f"{format_signed_money(current.amount_at_risk - previous.amount_at_risk)} {vs}"
            if compare
            else None,
            "Total amount of the flagged payments.",
            "inverse",
        ),
        Kpi(
            "Share flagged",
            format_percent(share, digits=2),
            f"{(share or 0) * 100 - (share_before or 0) * 100:+.2f} pp {vs}" if compare else None,
            "Flagged payments / all payments.",
            "inverse",
        ),
    ]


def requested_day(asked: str | None, default: date) -> date:
    """The day a link asks for (`wording.report_link`, e.g. from a catch-up digest), at most
    the day after `default`; else `default`."""
    try:
        day = date.fromisoformat(asked) if asked else default
    except ValueError:
        return default
    return min(day, default + timedelta(days=1))


# -- number formatting: fraud_pipeline.wording, plus the report's own comparisons ---------------------
def format_change(current: float, previous: float) -> str:
    """Relative change, e.g. '+3.2%'; '—' when there is nothing to compare with."""
    if not previous:
        return "—"
    return f"{(current - previous) / previous * 100:+.1f}%"


# -- frauds and payments tables ------------------------------------------------------------------
def reasons_text(reasons: Any) -> str:
    """The payment's reasons as sentences, for a table cell and the CSV."""
    return "; ".join(describe_reasons(reasons))


def true_label(value: Any) -> str:
    if value is None or pd.isna(value):
        return "unknown"
    return "fraud" if int(value) == 1 else "legitimate"


# Report-function columns behind the displayed tables (and the CSV downloads).
_TABLE_SQL_COLUMNS = (
    "trans_num, trans_local_time, card_last4, first, last, merchant, category, amt, city, "
    "state, fraud_probability, is_fraud_pred, is_fraud, model_version, reasons, merch_lat, "
    "merch_long"
)


def display_table(rows: pd.DataFrame, *, with_reasons: bool) -> pd.DataFrame:
    """Report rows -> the table an analyst reads: masked card, full name, plain merchant."""
    table = pd.DataFrame(
        {
            "Time": pd.to_datetime(rows["trans_local_time"]),
            "Card": rows["card_last4"].map(lambda last4: mask_last4(str(last4).strip())),
            "Cardholder": (rows["first"].fillna("") + " " + rows["last"].fillna("")).str.strip(),
            "Merchant": rows["merchant"].map(merchant_name),
            "Category": rows["category"],
            "Amount": rows["amt"].astype(float),
            "City": rows["city"],
            "State": rows["state"],
            "Probability": rows["fraud_probability"].astype(float),
            "Flagged": rows["is_fraud_pred"].astype(bool),
            "True label": rows["is_fraud"].map(true_label),
            "Model": rows["model_version"],
            "Transaction": rows["trans_num"],
        }
    )
    if with_reasons:
        table.insert(9, "Reasons", rows["reasons"].map(reasons_text))
        table = table.drop(columns=["Flagged"])  # every row of the frauds table is flagged
    return table.reset_index(drop=True)


def flagged_payments(conn: Db, day: date) -> pd.DataFrame:
    """The day's flagged payments (raw report rows), riskiest first, as the alert emails."""
    return _read(
        conn,
        f"SELECT {_TABLE_SQL_COLUMNS} FROM fraud_report_for_day(:day) WHERE is_fraud_pred "  # noqa: S608 (constants only)
        "ORDER BY fraud_probability DESC, trans_time, trans_num",
        day=day,
    )


def frauds_table(flagged: pd.DataFrame) -> pd.DataFrame:
    return display_table(flagged, with_reasons=True)


@dataclass(frozen=True)
class PaymentFilter:
    """What the analyst narrowed the day's payments to; empty tuples and None mean 'all'."""

    categories: tuple[str, ...] = ()
    states: tuple[str, ...] = ()
    amount_min: float | None = None
    amount_max: float | None = None
    probability_min: float | None = None
    probability_max: float | None = None

    def params(self) -> dict[str, Any]:
        return {
            "categories": list(self.categories),
            "states": list(self.states),
            "amount_min": self.amount_min,
            "amount_max": self.amount_max,
            "probability_min": self.probability_min,
            "probability_max": self.probability_max,
        }


_FILTERED_SQL = """
FROM fraud_report_for_day(:day)
WHERE (cardinality(CAST(:categories AS text[])) = 0 OR category = ANY(CAST(:categories AS text[])))
  AND (cardinality(CAST(:states AS text[])) = 0 OR state = ANY(CAST(:states AS text[])))
  AND (CAST(:amount_min AS numeric) IS NULL OR amt >= :amount_min)
  AND (CAST(:amount_max AS numeric) IS NULL OR amt <= :amount_max)
  AND (CAST(:probability_min AS float8) IS NULL OR fraud_probability >= :probability_min)
  AND (CAST(:probability_max AS float8) IS NULL OR fraud_probability <= :probability_max)
"""


def count_payments(conn: Db, day: date, where: PaymentFilter) -> int:
    frame = _read(conn, "SELECT count(*) AS n " + _FILTERED_SQL, day=day, **where.params())
    return int(frame["n"].iloc[0])


def payments_page(
    conn: Db, day: date, where: PaymentFilter, page: int = 1, page_size: int = 50
) -> pd.DataFrame:
    """One page (1-based) of the filtered payments in time order, as displayed."""
    rows = _read(
        conn,
        f"SELECT {_TABLE_SQL_COLUMNS} {_FILTERED_SQL} ORDER BY trans_time, trans_num "
        "LIMIT :limit OFFSET :offset",
        day=day,
        limit=page_size,
        offset=(max(page, 1) - 1) * page_size,
        **where.params(),
    )
    return display_table(rows, with_reasons=False)


def filtered_payments(conn: Db, day: date, where: PaymentFilter) -> pd.DataFrame:
    """Every payment matching the filter (all pages): what the CSV download holds."""
    rows = _read(
        conn,
        f"SELECT {_TABLE_SQL_COLUMNS} {_FILTERED_SQL} ORDER BY trans_time, trans_num",
        day=day,
        **where.params(),
    )
    return display_table(rows, with_reasons=True)


def page_count(total: int, page_size: int) -> int:
    return max(1, math.ceil(total / page_size))


@dataclass(frozen=True)
class FilterOptions:
    categories: list[str] = field(default_factory=list)
    states: list[str] = field(default_factory=list)
    max_amount: float = 0.0


def filter_options(conn: Db, day: date) -> FilterOptions:
    """The values the day's payments actually take, for the filter widgets."""
    frame = _read(
        conn,
        "SELECT array_agg(DISTINCT category ORDER BY category) AS categories, "
        "array_agg(DISTINCT state ORDER BY state) FILTER (WHERE state IS NOT NULL) AS states, "
        "coalesce(max(amt), 0) AS max_amount FROM fraud_report_for_day(:day)",
        day=day,
    )
    row = frame.iloc[0]
    return FilterOptions(
        categories=list(row["categories"] or []),
        states=list(row["states"] or []),
        max_amount=float(row["max_amount"]),
    )


def to_csv(table: pd.DataFrame) -> bytes:
    """The table as CSV, masked (`mask_card_numbers`) as a whole: a download is a sink too."""
    buffer = io.StringIO()
    table.to_csv(buffer, index=False, date_format="%Y-%m-%d %H:%M:%S")
    return mask_card_numbers(buffer.getvalue()).encode()


# -- chart aggregates ----------------------------------------------------------------------------
def by_hour(conn: Db, day: date) -> pd.DataFrame:
    """Payments and frauds per local hour, all 24 hours present (a DST day merges or skips one)."""
    frame = _read(
        conn,
        "SELECT extract(hour FROM trans_local_time)::int AS hour, count(*) AS payments, "
        "count(*) FILTER (WHERE is_fraud_pred) AS frauds "
        "FROM fraud_report_for_day(:day) GROUP BY 1",
        day=day,
    )
    hours = pd.DataFrame({"hour": range(24)})
    out = hours.merge(frame, on="hour", how="left").fillna(0)
    out[["payments", "frauds"]] = out[["payments", "frauds"]].astype(int)
    out["legitimate"] = out["payments"] - out["frauds"]
    return out


def by_category(conn: Db, day: date) -> pd.DataFrame:
    """Per category: payments, frauds, amount at risk and fraud rate; most frauds first."""
    frame = _read(
        conn,
        "SELECT category, count(*) AS payments, count(*) FILTER (WHERE is_fraud_pred) AS frauds, "
        "coalesce(sum(amt) FILTER (WHERE is_fraud_pred), 0)::float8 AS amount_at_risk "
        "FROM fraud_report_for_day(:day) GROUP BY category",
        day=day,
    )
    frame["fraud_rate"] = frame["frauds"] / frame["payments"]
    return frame.sort_values(["frauds", "category"], ascending=[False, True], ignore_index=True)


def amount_band_labels() -> list[str]:
    edges = (0, *AMOUNT_BOUNDS)
    labels = [f"${lo:,}–{hi:,}" for lo, hi in pairwise(edges)]
    return [*labels, f"${AMOUNT_BOUNDS[-1]:,}+"]


def amount_distribution(conn: Db, day: date) -> pd.DataFrame:
    """Payments per amount band, flagged vs legitimate, with each band's share of its class.

    Shares, not counts, make the two shapes comparable: frauds are a fraction of a percent.
    """
    frame = _read(
        conn,
        "SELECT width_bucket(amt, CAST(:bounds AS numeric[])) AS band, is_fraud_pred, "
        "count(*) AS payments FROM fraud_report_for_day(:day) GROUP BY 1, 2",
        day=day,
        bounds=list(AMOUNT_BOUNDS),
    )
    labels = amount_band_labels()
    grid = pd.MultiIndex.from_product([range(len(labels)), [True, False]], names=["band", "pred"])
    counts = frame.set_index(["band", "is_fraud_pred"])["payments"].reindex(grid, fill_value=0)
    out = counts.rename("payments").reset_index()
    out["payments"] = out["payments"].astype(int)
    out["amount_band"] = out["band"].map(dict(enumerate(labels)))
    out["kind"] = out["pred"].map({True: FRAUD_LABEL, False: LEGIT_LABEL})
    totals = out.groupby("kind")["payments"].transform("sum")
    out["share"] = (out["payments"] / totals.where(totals > 0)).fillna(0.0)
    return out.drop(columns=["pred"])


def merchant_density(conn: Db, day: date) -> pd.DataFrame:
    """The day's merchant locations on a 0.5° grid: the backdrop the fraud map is drawn on."""
    return _read(
        conn,
        "SELECT round(merch_lat * 2) / 2 AS lat, round(merch_long * 2) / 2 AS lon, "
        "count(*) AS payments FROM fraud_report_for_day(:day) "
        "WHERE merch_lat IS NOT NULL AND merch_long IS NOT NULL GROUP BY 1, 2",
        day=day,
    )


def fraud_locations(flagged: pd.DataFrame) -> pd.DataFrame:
    """Where each flagged payment's merchant is, with what the map tooltip shows."""
    located = flagged.dropna(subset=["merch_lat", "merch_long"])
    return pd.DataFrame(
        {
            "lat": located["merch_lat"].astype(float),
            "lon": located["merch_long"].astype(float),
            "merchant": located["merchant"].map(merchant_name),
            "category": located["category"],
            "amount": located["amt"].astype(float),
            "probability": located["fraud_probability"].astype(float),
            "city": located["city"],
            "state": located["state"],
        }
    ).reset_index(drop=True)


# -- late payments ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class LateSummary:
    """The day's payments that reached the payments API after their minute was fetched."""

    late: int
    beyond_bound: int
    median_late_s: float | None
    max_late_s: float | None


def late_payments(conn: Db, day: date) -> LateSummary:
    """Counted from `late_payments` (the runs' look-back and re-check record them)."""
    row = _read(conn, "SELECT * FROM fraud_late_payments(:day)", day=day).iloc[0]

    def seconds(value: Any) -> float | None:
        return None if pd.isna(value) else float(value)

    return LateSummary(
        late=int(row["late"]),
        beyond_bound=int(row["beyond_bound"]),
        median_late_s=seconds(row["median_late_s"]),
        max_late_s=seconds(row["max_late_s"]),
    )


def late_text(late: LateSummary, bound_min: int) -> str:
    """One sentence for the report: how many arrived late, how late, how many beyond the bound."""
    if not late.late:
        return "No payment arrived late: every one was there when its minute was fetched."
    assert late.median_late_s is not None and late.max_late_s is not None
    median = format_age(timedelta(seconds=late.median_late_s))
    most = format_age(timedelta(seconds=late.max_late_s))
    text = (
        f"{late.late:,} payment{'s' if late.late > 1 else ''} arrived after their minute was "
        f"fetched (median {median}, at most {most} late when caught), each stored and scored once"
    )
    if late.beyond_bound:
        text += (
            f"; {late.beyond_bound:,} of them later than the {bound_min}-minute bound "
            "(found by the hourly re-check or a reconciliation)"
        )
    return text + "."


# -- freshness -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Freshness:
    last_trans_time: datetime | None
    last_scored_at: datetime | None
    checked_at: datetime
    stale_after: timedelta

    @property
    def lag(self) -> timedelta | None:
        return self.checked_at - self.last_scored_at if self.last_scored_at else None

    @property
    def stalled(self) -> bool:
        """No payment scored for longer than the pipeline's cadence allows (or none at all)."""
        return self.lag is None or self.lag > self.stale_after


def freshness(conn: Db, settings: Settings | None = None) -> Freshness:
    settings = settings or get_settings()
    row = _read(conn, "SELECT * FROM fraud_report_freshness()").iloc[0]

    def aware(value: Any) -> datetime | None:
        return None if pd.isna(value) else pd.Timestamp(value).tz_convert(settings.tz)

    checked = aware(row["checked_at"])
    assert checked is not None  # now() is never NULL
    return Freshness(
        last_trans_time=aware(row["last_trans_time"]),
        last_scored_at=aware(row["last_scored_at"]),
        checked_at=checked,
        stale_after=timedelta(minutes=settings.report_stale_after_min),
    )


def format_age(age: timedelta) -> str:
    seconds = int(age.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 2 * 3600:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    return f"{seconds // 86400} days"
