"""The report's numbers against independent SQL on the seeded days, and its building blocks."""

from __future__ import annotations

import math
from datetime import date, timedelta

import numpy as np
import psycopg2
import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine, make_url

from fraud_pipeline.cli import main
from fraud_pipeline.config import Settings, get_settings
from fraud_pipeline.report import queries, reviews
from tests.support.report import SeededDay

DAY_ROWS = "FROM payments_scored WHERE trans_time >= %(lo)s AND trans_time < %(hi)s"


@pytest.fixture
def reader(seeded: SeededDay) -> Engine:
    """The report's own connection: the read-only role."""
    engine = create_engine(queries.sqlalchemy_url(queries.report_database_url()))
    yield engine
    engine.dispose()


def test_reader_url_uses_the_read_only_role(database_url: str) -> None:
    url = make_url(queries.report_database_url())
    app = make_url(database_url)
    assert (url.drivername, url.username, url.password) == (
        "postgresql",
        "fraud_report_reader",
        None,
    )
    # Same server (TCP host or the embedded server's socket), same database, only the role differs.
    assert (url.host, url.port, url.database, dict(url.query)) == (
        app.host,
        app.port,
        app.database,
        dict(app.query),
    )
    explicit = Settings(report_database_url="postgresql://someone@db:5432/x")
    assert queries.report_database_url(explicit) == "postgresql://someone@db:5432/x"
    engine_url = make_url(queries.sqlalchemy_url(str(queries.report_database_url())))
    assert (engine_url.drivername, engine_url.username) == (
        "postgresql+psycopg2",
        "fraud_report_reader",
    )
    assert engine_url.set(drivername="postgresql") == url


@pytest.mark.clock
def test_reader_role_reads_the_report_but_not_the_table(reader: Engine, seeded: SeededDay) -> None:
    with reader.connect() as conn:
        conn.exec_driver_sql("SELECT * FROM fraud_report_freshness()")
        conn.exec_driver_sql("SELECT count(*) FROM v_daily_fraud_report")
    with pytest.raises(Exception, match="permission denied"), reader.connect() as conn:
        conn.exec_driver_sql("SELECT count(*) FROM payments_scored")


@pytest.mark.clock
def test_summary_and_model_performance_equal_sql(reader: Engine, seeded: SeededDay) -> None:
    s = queries.day_summary(reader, seeded.day)
    assert s.payments == seeded.one(f"SELECT count(*) {DAY_ROWS}") == 640
    assert s.frauds == seeded.one(f"SELECT count(*) {DAY_ROWS} AND is_fraud_pred")
    assert s.amount_at_risk == pytest.approx(
        float(seeded.one(f"SELECT sum(amt) {DAY_ROWS} AND is_fraud_pred"))
    )
    tp = seeded.one(f"SELECT count(*) {DAY_ROWS} AND is_fraud = 1 AND is_fraud_pred")
    fp = seeded.one(f"SELECT count(*) {DAY_ROWS} AND is_fraud = 0 AND is_fraud_pred")
    fn = seeded.one(f"SELECT count(*) {DAY_ROWS} AND is_fraud = 1 AND NOT is_fraud_pred")
    assert (s.caught, s.false_alarms, s.missed) == (tp, fp, fn)
    assert tp + fn > 0, "the seed must hold true frauds"
    assert s.precision == pytest.approx(tp / (tp + fp))
    assert s.recall == pytest.approx(tp / (tp + fn))
    assert s.missed_amount == pytest.approx(
        float(
            seeded.one(
                f"SELECT coalesce(sum(amt), 0) {DAY_ROWS} AND is_fraud = 1 AND NOT is_fraud_pred"
            )
        )
    )


@pytest.mark.clock
def test_kpis_compare_with_the_day_before(reader: Engine, seeded: SeededDay) -> None:
    before = seeded.day - timedelta(days=1)
    current = queries.day_summary(reader, seeded.day)
    previous = queries.day_summary(reader, before)
    assert previous.payments == seeded.one(f"SELECT count(*) {DAY_ROWS}", before) == 400
    payments, frauds, at_risk, share = queries.kpis(current, previous)
    assert payments.value == "640"
    assert payments.delta is not None and payments.delta.startswith("+60.0% vs ")
    assert frauds.delta is not None and frauds.delta.startswith(
        f"{current.frauds - previous.frauds:+,} "
    )
    assert at_risk.value == f"${current.amount_at_risk:,.2f}"
    assert share.value == f"{current.frauds / 640 * 100:.2f}%"


@pytest.mark.clock
def test_frauds_table_lists_every_flagged_payment_masked_riskiest_first(
    reader: Engine, seeded: SeededDay
) -> None:
    table = queries.frauds_table(queries.flagged_payments(reader, seeded.day))
    expected = seeded.rows(
        f"SELECT trans_num, amt, card_last4, fraud_probability {DAY_ROWS} AND is_fraud_pred "
        "ORDER BY fraud_probability DESC, trans_time, trans_num"
    )
    assert list(table["Probability"]) == sorted(table["Probability"], reverse=True)
    assert list(table["Transaction"]) == [r[0] for r in expected]
    assert list(table["Amount"]) == pytest.approx([float(r[1]) for r in expected])
    assert list(table["Card"]) == [f"**** **** **** {r[2]}" for r in expected]
    assert list(table["Probability"]) == pytest.approx([r[3] for r in expected])
    assert table["Reasons"].str.fullmatch(r"\$\d+\.\d\d payment").all()  # factories: "amt"
    assert not table["Merchant"].str.startswith("fraud_").any()
    assert set(table.columns) >= {"Time", "Cardholder", "Category", "Model", "Reasons"}


@pytest.mark.clock
def test_filters_and_pages_equal_sql(reader: Engine, seeded: SeededDay) -> None:
    where = queries.PaymentFilter(
        categories=("grocery_pos", "shopping_net"), amount_min=10.0, probability_min=0.3
    )
    expected = seeded.one(
        f"SELECT count(*) {DAY_ROWS} AND category = ANY(%(c)s) AND amt >= 10 "
        "AND fraud_probability >= 0.3",
        c=["grocery_pos", "shopping_net"],
    )
    assert 0 < queries.count_payments(reader, seeded.day, where) == expected
    pages = [queries.payments_page(reader, seeded.day, where, p, 7) for p in range(1, 100)]
    ids = [t for page in pages for t in page["Transaction"]]
    assert len(ids) == len(set(ids)) == expected
    assert queries.page_count(expected, 7) == math.ceil(expected / 7)
    csv = queries.to_csv(queries.filtered_payments(reader, seeded.day, where)).decode()
    assert len(csv.strip().splitlines()) == expected + 1
    states = queries.PaymentFilter(states=("TX",), amount_max=100.0, probability_max=0.5)
    assert queries.count_payments(reader, seeded.day, states) == seeded.one(
        f"SELECT count(*) {DAY_ROWS} AND state = 'TX' AND amt <= 100 AND fraud_probability <= 0.5"
    )
    options = queries.filter_options(reader, seeded.day)
    assert options.categories == sorted(
        r[0] for r in seeded.rows(f"SELECT DISTINCT category {DAY_ROWS}")
    )
    assert options.max_amount == float(seeded.one(f"SELECT max(amt) {DAY_ROWS}"))


@pytest.mark.clock
def test_chart_aggregates_equal_sql(reader: Engine, seeded: SeededDay) -> None:
    hours = queries.by_hour(reader, seeded.day)
    assert list(hours["hour"]) == list(range(24))
    expected = dict(
        seeded.rows(
            "SELECT extract(hour FROM trans_time AT TIME ZONE %(tz)s)::int, count(*) "
            f"{DAY_ROWS} AND is_fraud_pred GROUP BY 1",
            tz=get_settings().business_tz,
        )
    )
    assert [int(v) for v in hours["frauds"]] == [expected.get(h, 0) for h in range(24)]
    assert hours["payments"].sum() == 640

    categories = queries.by_category(reader, seeded.day)
    expected_categories = dict(
        seeded.rows(f"SELECT category, count(*) {DAY_ROWS} AND is_fraud_pred GROUP BY 1")
    )
    shown = dict(zip(categories["category"], categories["frauds"], strict=True))
    assert {k: v for k, v in shown.items() if v} == expected_categories
    assert list(categories["frauds"]) == sorted(categories["frauds"], reverse=True)

    amounts = seeded.rows(f"SELECT amt::float8, is_fraud_pred {DAY_ROWS}")
    distribution = queries.amount_distribution(reader, seeded.day)
    for flagged, kind in ((True, queries.FRAUD_LABEL), (False, queries.LEGIT_LABEL)):
        values = np.array([a for a, f in amounts if f is flagged])
        bands = np.digitize(values, queries.AMOUNT_BOUNDS)  # same rule as width_bucket
        mine = distribution[distribution["kind"] == kind].sort_values("band")
        assert list(mine["payments"]) == np.bincount(bands, minlength=8).tolist()
        assert mine["share"].sum() == pytest.approx(1.0)

    density = queries.merchant_density(reader, seeded.day)
    assert density["payments"].sum() == seeded.one(
        f"SELECT count(*) {DAY_ROWS} AND merch_lat IS NOT NULL"
    )


@pytest.mark.clock
def test_freshness_reports_last_scored_payment(reader: Engine, seeded: SeededDay) -> None:
    fresh = queries.freshness(reader)
    with psycopg2.connect(seeded.url) as conn, conn.cursor() as cur:
        cur.execute("SELECT max(trans_time), max(scored_at) FROM payments_scored")
        last_trans, last_scored = cur.fetchone()  # type: ignore[misc]
        assert fresh.last_trans_time == last_trans
        assert fresh.last_scored_at == last_scored
        assert fresh.stalled  # the factories' scores date from March 2026
        cur.execute(
            "UPDATE payments_scored SET scored_at = now() - interval '2 minutes' "
            "WHERE trans_num = (SELECT max(trans_num) FROM payments_scored)"
        )
    conn.close()
    fresh = queries.freshness(reader)
    assert fresh.lag is not None and timedelta(minutes=1) < fresh.lag < timedelta(minutes=5)
    assert not fresh.stalled


@pytest.mark.clock
def test_empty_day_has_no_payments(reader: Engine, seeded: SeededDay) -> None:
    empty = queries.day_summary(reader, seeded.day - timedelta(days=30))
    assert empty.payments == 0 and empty.share_flagged is None and empty.precision is None
    assert queries.frauds_table(queries.flagged_payments(reader, empty.day)).empty
    assert queries.by_hour(reader, empty.day)["payments"].sum() == 0
    assert queries.amount_distribution(reader, empty.day)["share"].sum() == 0


def test_formatting_reads_well() -> None:
    assert queries.format_change(120, 100) == "+20.0%"
    assert queries.format_change(5, 0) == "—"
    assert queries.format_age(timedelta(minutes=125)) == "2 h 05 min"
    reasons = [
        {"feature": "amt", "value": 1204.51, "contribution": 2.1},
        {"feature": "is_night", "value": 1.0, "contribution": 1.0},
    ]
    assert queries.reasons_text(reasons) == "$1,204.51 payment; night payment"
    assert queries.reasons_text([]) == ""
    today = date(2026, 3, 28)
    assert queries.requested_day("2026-03-01", today) == date(2026, 3, 1)
    assert queries.requested_day("2026-04-01", today) == date(2026, 3, 29)  # at most today
    assert queries.requested_day("not a day", today) == today
    assert queries.requested_day(None, today) == today


@pytest.mark.parametrize(
    ("command", "variable", "role"),
    [
        ("set-reader-password", "REPORT_DATABASE_URL", queries.REPORT_ROLE),
        ("set-reviewer-password", "REVIEW_DATABASE_URL", reviews.REVIEWER_ROLE),
    ],
)
@pytest.mark.clock
@pytest.mark.xdist_group("cluster-roles")  # a role is the whole server's: one worker at a time
def test_role_password_is_set_from_its_url(
    seeded: SeededDay, monkeypatch: pytest.MonkeyPatch, command: str, variable: str, role: str
) -> None:
    monkeypatch.setenv(variable, f"postgresql://{role}:pw-42@db/fraud_db")
    get_settings.cache_clear()
    check = "SELECT rolpassword IS NOT NULL FROM pg_authid WHERE rolname = %(role)s"
    try:
        assert main(["report", command]) == 0
        assert seeded.one(check, role=role) is True
    finally:
        conn = psycopg2.connect(seeded.url)
        queries.set_role_password(conn, role, None)  # trust auth in the test server: as before
        conn.close()
        get_settings.cache_clear()
    assert seeded.one(check, role=role) is False
