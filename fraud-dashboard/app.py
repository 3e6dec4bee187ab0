"""The morning fraud report: yesterday's payments and frauds, for the risk analysts.

`streamlit run fraud-dashboard/app.py`. Layout only: every number and table comes from
`fraud_pipeline.report` (queries, quality, reviews), read as the database role
`fraud_report_reader`; verdicts on the "To review" page are written as `fraud_report_reviewer`.
Pages: the morning report (default), To review, Model health (`model_health_page.py`), Rules
(`rules_page.py`, leads), Users and Audit. Each person signs in as themselves (`security.users`); their role decides which pages
are listed and which actions (verdicts, exports, accounts) the page offers and accepts; views of
a card's payments, verdicts, exports, sign-ins and sign-outs leave audit rows.
"""

from __future__ import annotations

import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg2
import streamlit as st
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from fraud_pipeline import clock, wording
from fraud_pipeline.config import Settings, get_settings
from fraud_pipeline.report import charts, quality, queries, reviews
from fraud_pipeline.security import audit, users

# The pages beside this file: `streamlit run` puts its folder on sys.path, AppTest does not.
sys.path.insert(0, str(Path(__file__).resolve().parent))
import model_health_page
import rules_page
from report_engine import engine, ttl

st.set_page_config(page_title="Morning fraud report", page_icon=":material/shield:", layout="wide")

PAGE_SIZES = (25, 50, 100, 250)
HIDE_TABLE_DOWNLOAD = (
    "<style>[data-testid='stElementToolbarButton']:has(button[aria-label='Download as CSV']),"
    "button[aria-label='Download as CSV'] {display: none !important;}</style>"
)
WARN = ":material/warning:"
TABLE_COLUMNS = {
    "Time": st.column_config.DatetimeColumn("Time", format="HH:mm:ss"),
    "Amount": st.column_config.NumberColumn("Amount", format="dollar"),
    "Probability": st.column_config.ProgressColumn(
        "Probability", format="percent", min_value=0.0, max_value=1.0
    ),
    "Reasons": st.column_config.TextColumn("Reasons", width="large"),
    "Transaction": st.column_config.TextColumn("Transaction", width="small"),
}


# -- data, cached briefly: the pipeline adds payments every minute --------------------------------
@st.cache_data(ttl=ttl(), show_spinner=False)
def summary(url: str, day: date) -> queries.DaySummary:
    return queries.day_summary(engine(url), day)


@st.cache_data(ttl=ttl(), show_spinner=False)
def late(url: str, day: date) -> queries.LateSummary:
    return queries.late_payments(engine(url), day)


@st.cache_data(ttl=ttl(), show_spinner=False)
def flagged(url: str, day: date) -> pd.DataFrame:
    return queries.flagged_payments(engine(url), day)


@st.cache_data(ttl=ttl(), show_spinner=False)
def charts_data(url: str, day: date) -> dict[str, pd.DataFrame]:
    conn = engine(url)
    return {
        "hours": queries.by_hour(conn, day),
        "categories": queries.by_category(conn, day),
        "amounts": queries.amount_distribution(conn, day),
        "density": queries.merchant_density(conn, day),
    }


@st.cache_data(ttl=ttl(), show_spinner=False)
def measured(url: str, day: date) -> dict[str, list[quality.Quality]]:
    return quality.day_and_window(engine(url), day)


@st.cache_data(ttl=ttl(), show_spinner=False)
def options(url: str, day: date) -> queries.FilterOptions:
    return queries.filter_options(engine(url), day)


@st.cache_data(ttl=ttl(), show_spinner=False)
def payments(
    url: str, day: date, where: queries.PaymentFilter, page: int, size: int
) -> tuple[int, pd.DataFrame]:
    conn = engine(url)
    return queries.count_payments(conn, day, where), queries.payments_page(
        conn, day, where, page, size
    )


# -- sign-in: one identity per person (security.users), each action checked against its role ----
def signed_in(settings: Settings) -> bool:
    if st.session_state.get("user"):
        return True
    sso = single_sign_on()
    _, middle, _ = st.columns([1, 1.2, 1])
    with middle:
        st.title(":material/shield: Morning fraud report")
        st.caption("This report holds cardholders' personal data: sign in to read it.")
        if sso and st.user.is_logged_in:  # back from the identity provider
            try:
                who = sign_in_vouched(settings)
            except (SQLAlchemyError, psycopg2.Error) as error:
                st.error(explain(error, queries.report_database_url(settings)))
                return False
            if who is not None:
                st.session_state["user"], st.session_state["role"] = who.username, who.role
                return True
            st.error(
                f"{st.user.get('email')} has no enabled account in this report: ask an admin "
                "(`fraud-pipeline users add EMAIL --role ROLE`)."
            )
            st.button("Sign out", on_click=st.logout)
            return False
        if sso and st.button("Sign in with single sign-on", type="primary"):
            st.login()
        with st.form("login"):
            user = st.text_input("User", key="login_user")
            password = st.text_input("Password", type="password", key="login_password")
            submitted = st.form_submit_button("Sign in", type="primary")
        if submitted:
            try:
                who = sign_in(user, password, settings)
            except (SQLAlchemyError, psycopg2.Error) as error:  # nobody can sign in: say why
                st.error(explain(error, queries.report_database_url(settings)))
                return False
            if who is not None:
                st.session_state["user"], st.session_state["role"] = who.username, who.role
                st.rerun()
            st.error("Wrong user or password.")
    return False


def sign_in(user: str, password: str, settings: Settings) -> users.User | None:
    """A local account (Argon2id, audited): no shared login, not even before the first account
    exists (`make run` makes an admin; `fraud-pipeline users add` the others)."""
    conn = engine(queries.report_database_url(settings)).raw_connection()
    try:
        who = users.authenticate(conn.cursor(), user, password, "report")
        conn.commit()
        return who
    finally:
        conn.close()


def single_sign_on() -> bool:
    """Whether OpenID Connect is set up: an [auth] section in .streamlit/secrets.toml."""
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets file at all
        return False


def sign_in_vouched(settings: Settings) -> users.User | None:
    """The account of the person the identity provider signed in (named by their email)."""
    email = str(st.user.get("email") or "").strip().lower()
    detail = {"via": "oidc", "iss": str(st.user.get("iss") or ""), "sub": str(st.user.get("sub"))}
    conn = engine(queries.report_database_url(settings)).raw_connection()
    try:
        who = users.vouched_for(conn.cursor(), email, detail, "report")
        conn.commit()
        return who
    finally:
        conn.close()


def current_user() -> str:
    return str(st.session_state.get("user") or "")


def allowed(action: str) -> bool:
    return users.may(st.session_state.get("role"), action)


def audited(action: str, target: str = "", detail: str = "") -> None:
    """One audit row for what the signed-in person just saw or did."""
    with engine(queries.report_database_url()).begin() as connection:
        reviews.audit_row(connection, current_user(), action, target, detail)


# -- sections -------------------------------------------------------------------------------------
def freshness_banner(url: str, settings: Settings) -> None:
    fresh = queries.freshness(engine(url), settings)
    if fresh.last_scored_at is None:
        st.warning("No scored payment in the database yet: is the pipeline running?", icon=WARN)
        return
    age = queries.format_age(fresh.lag or timedelta(0))
    when = f"{fresh.last_scored_at:%a %d %b %H:%M:%S}"
    if fresh.stalled:
        st.warning(
            f"The pipeline looks stalled: the last payment was scored {age} ago ({when}); "
            f"it scores every minute.",
            icon=WARN,
        )
    else:
        st.caption(
            f":green[:material/check_circle:] Live data: last payment scored {age} ago ({when})."
        )


def kpi_row(current: queries.DaySummary, previous: queries.DaySummary) -> None:
    for column, kpi in zip(st.columns(4), queries.kpis(current, previous), strict=True):
        column.metric(
            kpi.label,
            kpi.value,
            kpi.delta,
            delta_color=kpi.delta_color,  # type: ignore[arg-type]
            help=kpi.help,
            border=True,
        )


def model_row(day: queries.DaySummary) -> None:
    if not day.has_labels:
        return
    st.markdown(
        f"**How the model did** — true labels known for {wording.format_count(day.labelled)} "
        f"of {wording.format_count(day.payments)} payments"
    )
    precision, recall, missed, alarms = st.columns(4)
    precision.metric(
        "Precision",
        wording.format_percent(day.precision),
        border=True,
        help="Flagged payments that really were frauds.",
    )
    recall.metric(
        "Recall",
        wording.format_percent(day.recall),
        border=True,
        help="True frauds the model flagged.",
    )
    missed.metric(
        "Missed frauds",
        wording.format_count(day.missed),
        f"{wording.format_money(day.missed_amount)} not caught",
        delta_color="off",
        delta_arrow="off",
        border=True,
    )
    alarms.metric(
        "False alarms",
        wording.format_count(day.false_alarms),
        border=True,
        help="Flagged payments that were legitimate: analyst time spent.",
    )


def quality_section(url: str, day: date) -> None:
    periods = measured(url, day)
    day_label, window_label = periods
    today, window = periods[day_label][-1], periods[window_label][-1]  # all model versions
    st.markdown(
        f"**Measured quality** — the analysts' verdicts on the alerts (To review page), "
        f"{day_label} and the {window_label} to it"
    )
    columns = st.columns(4)
    figures = [
        ("Alerts reviewed", f"{today.reviewed:,} of {today.alerts:,}", None),
        ("Confirmed precision", wording.format_percent(today.confirmed_precision), None),
        ("Frauds confirmed", wording.format_count(today.confirmed), None),
        (
            f"Confirmed precision, {window_label}",
            wording.format_percent(window.confirmed_precision),
            f"{window.confirmed:,} confirmed of {window.reviewed:,} reviewed",
        ),
    ]
    for column, (label, value, delta) in zip(columns, figures, strict=True):
        column.metric(
            label,
            value,
            delta,
            delta_color="off",
            delta_arrow="off",
            border=True,
            help="Confirmed frauds / reviewed alerts (the latest verdict of each alert).",
        )
    st.dataframe(quality.quality_table(periods), hide_index=True, key="quality")


def frauds_section(rows: pd.DataFrame, day: date) -> None:
    table = queries.frauds_table(rows)
    st.subheader(f"Frauds detected · {wording.format_count(len(table))} · riskiest first")
    if table.empty:
        st.info("The model flagged no payment on this day.")
        return
    st.dataframe(table, hide_index=True, column_config=TABLE_COLUMNS, height=320, key="frauds")
    if allowed("export"):
        st.download_button(
            "Frauds (CSV)",
            queries.to_csv(table),
            file_name=f"frauds-{day}.csv",
            mime="text/csv",
            on_click=audited,
            args=(audit.EXPORT, f"frauds-{day}.csv", f"{len(table)} rows"),
            icon=":material/download:",
        )


def charts_section(url: str, day: date, rows: pd.DataFrame) -> None:
    data = charts_data(url, day)
    figures = [
        ("Payments and frauds by hour", charts.hourly_chart(data["hours"])),
        ("Frauds by category", charts.category_chart(data["categories"])),
        ("Amounts: frauds vs legitimate", charts.amount_chart(data["amounts"])),
        (
            "Where the frauds happened",
            charts.fraud_map(data["density"], queries.fraud_locations(rows)),
        ),
    ]
    for pair in (figures[:2], figures[2:]):
        for column, (title, chart) in zip(st.columns(2), pair, strict=True):
            with column:
                st.subheader(title)
                st.altair_chart(chart, width="stretch", height=charts.HEIGHT)


def payments_section(url: str, day: date) -> None:
    st.subheader("All payments of the day")
    choices = options(url, day)
    top = max(1.0, float(int(choices.max_amount) + 1))
    category, state, amount, probability = st.columns([1.2, 1.2, 1, 1])
    where = queries.PaymentFilter(
        categories=tuple(category.multiselect("Category", choices.categories, key="f_category")),
        states=tuple(state.multiselect("State", choices.states, key="f_state")),
        **dict(
            zip(
                ("amount_min", "amount_max"),
                amount.slider("Amount", 0.0, top, (0.0, top), format="$%.0f", key="f_amount"),
                strict=True,
            )
        ),
        **dict(
            zip(
                ("probability_min", "probability_max"),
                probability.slider("Fraud probability", 0.0, 1.0, (0.0, 1.0), key="f_prob"),
                strict=True,
            )
        ),
    )
    size_column, page_column, count_column = st.columns([1, 1, 3])
    size = size_column.selectbox("Rows per page", PAGE_SIZES, index=1, key="page_size")
    total, _ = payments(url, day, where, 1, size)
    pages = queries.page_count(total, size)
    page = int(page_column.number_input("Page", 1, pages, 1, key="page"))
    total, table = payments(url, day, where, page, size)
    count_column.markdown(
        f"<br>**{wording.format_count(total)}** payments match · page {page} of {pages}",
        unsafe_allow_html=True,
    )
    st.dataframe(table, hide_index=True, column_config=TABLE_COLUMNS, key="payments")
    if allowed("export"):
        st.download_button(
            f"These {wording.format_count(total)} payments (CSV, all pages)",
            lambda: queries.to_csv(queries.filtered_payments(engine(url), day, where)),
            file_name=f"payments-{day}.csv",
            mime="text/csv",
            on_click=audited,
            args=(audit.EXPORT, f"payments-{day}.csv", f"{total} rows, {where}"),
            icon=":material/download:",
        )


def report_page() -> None:
    settings, url = get_settings(), queries.report_database_url()
    with st.sidebar:
        default_day = clock.yesterday()
        asked = queries.requested_day(st.query_params.get(wording.REPORT_DAY_PARAM), default_day)
        day = st.date_input(
            "Report day", asked, max_value=default_day + timedelta(days=1), key="day"
        )
        st.caption(f"Days run midnight to midnight, {settings.business_tz} time.")
        if st.button("Refresh now"):
            st.cache_data.clear()
    assert isinstance(day, date)
    st.title(":material/shield: Morning fraud report")
    st.markdown(f"#### {day:%A %d %B %Y}")
    freshness_banner(url, settings)
    current, previous = summary(url, day), summary(url, day - timedelta(days=1))
    if current.payments == 0:
        st.info(f"No payments were scored on {day:%A %d %B %Y}. Pick another day in the sidebar.")
        return
    kpi_row(current, previous)
    model_row(current)
    st.caption(queries.late_text(late(url, day), settings.late_payment_lookback_min))
    quality_section(url, day)
    rows = flagged(url, day)
    frauds_section(rows, day)
    charts_section(url, day, rows)
    payments_section(url, day)
    versions = ", ".join(sorted(rows["model_version"].unique())) if len(rows) else "—"
    st.caption(f"Model version(s) of the flagged payments: {versions}.")


# -- To review: cases, one per card episode ---------------------------------------------------------
CARD_COLUMNS = {
    # The card's history spans days: every row says its date (issue 30).
    "Time": st.column_config.DatetimeColumn("Date and time", format="ddd DD MMM YYYY, HH:mm:ss"),
    **{key: TABLE_COLUMNS[key] for key in ("Amount", "Probability")},
}
NOTE_COLUMNS = {"When": st.column_config.DatetimeColumn("When", format="DD MMM YYYY, HH:mm")}
DAYS = {"Today": 1, "2 days": 2, "7 days": 7, "30 days": 30, "All": None}
STATUS_WORDS = {"open": "Open", "reviewed": "Reviewed", "all": "All"}
KIND_WORDS = {None: "Live and digest", **reviews.KINDS}
CASE_SIZES = (10, 25, 50)


@st.cache_data(ttl=ttl(), show_spinner=False)
def case_options(url: str) -> reviews.CaseOptions:
    return reviews.case_options(engine(url))


def record(
    trans_nums: list[str], verdict: reviews.Verdict, note_key: str, what: str, case_key: str
) -> None:
    """A button's callback: the verdict, by the signed-in user, through the reviewer role; the
    analyst claims the case with it (refused when another analyst holds it)."""
    analyst = current_user()  # the signed-in person: never a typed name
    if not analyst or not allowed("review"):
        st.session_state["review_error"] = "Your role may not record verdicts."
        return
    url = reviews.review_database_url()
    try:
        written = reviews.record_verdicts(
            engine(url), trans_nums, verdict, analyst, st.session_state.get(note_key), case_key
        )
    except reviews.CaseHeld as held:
        st.session_state["review_error"] = f"This case is claimed by {held.holder}."
        return
    except SQLAlchemyError as error:
        st.session_state["review_error"] = explain(error, url)
        return
    measured.clear()
    st.session_state["reviewed"] = (
        f"{what}: {reviews.VERDICT_WORDS[verdict].lower()} ({written} verdict"
        f"{'s' if written != 1 else ''}, by {analyst})."
    )


def verdict_buttons(
    trans_nums: list[str], key: str, what: str, case_key: str, bulk: bool = False
) -> None:
    note_key = f"note-{key}"
    st.text_input(
        "Note (optional)",
        key=note_key,
        max_chars=reviews.MAX_NOTE,
        label_visibility="collapsed",
        placeholder="Note (optional)",
    )
    labels = {
        reviews.CONFIRMED: f"Episode ({len(trans_nums)}): fraud" if bulk else "Confirmed fraud",
        reviews.FALSE_ALARM: (
            f"Episode ({len(trans_nums)}): false alarm" if bulk else "False alarm"
        ),
    }
    for column, verdict, icon in zip(
        st.columns(2),
        (reviews.CONFIRMED, reviews.FALSE_ALARM),
        (":material/gpp_bad:", ":material/verified_user:"),
        strict=True,
    ):
        column.button(
            labels[verdict],
            key=f"{verdict}-{key}",
            icon=icon,
            on_click=record,
            args=(trans_nums, verdict, note_key, what, case_key),
            width="stretch",
        )


def alert_card(alert: reviews.Alert, case_key: str, may_act: bool) -> None:
    facts, actions = st.columns([3, 2])
    verdict = f" · **{reviews.verdict_words(alert.verdict)}**" if alert.verdict else ""
    facts.markdown(
        f"**{alert.time:%a %d %b %Y %H:%M}** · {alert.merchant} ({alert.category}) · "
        f"**{wording.format_money(alert.amount)}** · {alert.place} · "
        f"probability **{wording.format_percent(alert.probability)}** · "
        f"{'live alert' if alert.live else 'catch-up digest'} · "
        f"model {alert.model_version} · `{alert.trans_num}`{verdict}  \n"
        f"flagged by: {literal('; '.join(alert.flagged_by))}"
    )
    if alert.reasons:
        facts.markdown("\n".join(f"- {reason}" for reason in alert.reasons))
    if may_act:
        with actions:
            verdict_buttons(
                [alert.trans_num], alert.trans_num, f"Payment {alert.trans_num}", case_key
            )


def claim(case_key: str, analyst: str | None = None) -> None:
    """Claim a case for oneself, or (a lead) assign it to `analyst`; audited."""
    me = current_user()
    if not me or not allowed("review") or (analyst and not allowed("assign")):
        st.session_state["review_error"] = "Your role may not claim or assign cases."
        return
    holder = reviews.claim_case(
        engine(reviews.review_database_url()), case_key, analyst or me, me if analyst else None
    )
    if holder != (analyst or me):
        st.session_state["review_error"] = f"This case is already claimed by {holder}."
    else:
        st.session_state["reviewed"] = f"Case claimed by {holder}."


def release(case_key: str) -> None:
    if reviews.release_case(
        engine(reviews.review_database_url()), case_key, current_user(), force=allowed("assign")
    ):
        st.session_state["reviewed"] = "Case released."


def open_case(case_key: str | None) -> None:
    if case_key is None:
        st.query_params.pop(wording.CASE_PARAM, None)
    else:
        st.query_params[wording.CASE_PARAM] = case_key


def case_view(url: str, trans_num: str) -> None:
    """One case: its alerts, one verdict for the episode, its notes and the card's history."""
    st.button("Back to the queue", icon=":material/arrow_back:", on_click=open_case, args=(None,))
    case = reviews.review_case(engine(url), trans_num)
    if case is None:
        st.warning(f"No case holds payment `{trans_num}`.", icon=WARN)
        return
    me = current_user()
    st.subheader(
        f"{case.card} · {case.cardholder} · {len(case.alerts)} alert"
        f"{'s' if len(case.alerts) != 1 else ''}, {len(case.open_trans_nums)} without a verdict"
    )
    may_act = case.claimed_by in (None, me)
    holder, actions = st.columns([3, 2])
    if case.claimed_by is None:
        holder.markdown("Nobody works this case yet.")
        actions.button("Claim this case", key="claim-case", on_click=claim, args=(case.key,))
    elif case.claimed_by == me:
        holder.markdown(":material/assignment_ind: **You work this case.**")
        actions.button("Release", key="release-case", on_click=release, args=(case.key,))
    else:
        holder.warning(f"Claimed by **{case.claimed_by}**: they work this case.", icon=WARN)
        if allowed("assign"):
            actions.button("Release", key="release-case", on_click=release, args=(case.key,))
    if allowed("assign"):
        with st.expander("Assign to an analyst"):
            who = st.text_input("Analyst's user name", key="assign-to")
            st.button("Assign", key="assign-case", on_click=claim, args=(case.key, who.strip()))
    with st.container(border=True):
        if may_act:
            facts, actions = st.columns([3, 2])
            targets = case.open_trans_nums or case.trans_nums
            facts.markdown(
                f"**The whole episode**: one verdict for its {len(targets)} "
                + ("alerts without a verdict" if case.open_trans_nums else "alerts")
            )
            with actions:
                verdict_buttons(targets, "case", f"Card {case.card}", case.key, bulk=True)
        for alert in case.alerts:
            alert_card(alert, case.key, may_act)
    notes = reviews.case_notes(engine(url), case.key)
    if len(notes):
        st.markdown("**Verdicts and notes**")
        st.dataframe(notes, hide_index=True, column_config=NOTE_COLUMNS, key="case-notes")
    st.markdown(f"**This card's payments from {reviews.CARD_HISTORY_DAYS} days before on**")
    viewed = st.session_state.setdefault("cards_viewed", set())
    if case.key not in viewed:  # each card's payments once per sign-in
        audited(audit.VIEW_CARD, case.key, case.card)
        viewed.add(case.key)
    st.dataframe(
        reviews.card_payments(engine(url), case.key),
        hide_index=True,
        column_config=CARD_COLUMNS,
        key="card-history",
    )


def case_filter(url: str) -> reviews.CaseFilter:
    choices = case_options(url)
    search, days, status, kind = st.columns([2, 1, 1, 1.2])
    query = search.text_input(
        "Search", key="q_search", placeholder="Card's last 4, cardholder, merchant, transaction"
    )
    period = days.selectbox("Alerts of", list(DAYS), index=2, key="q_days")
    state = status.selectbox(
        "Status", reviews.STATUSES, format_func=STATUS_WORDS.get, key="q_status"
    )
    chosen = kind.selectbox("Alerts", list(KIND_WORDS), format_func=KIND_WORDS.get, key="q_kind")
    with st.expander("More filters"):
        model, category, amount, score = st.columns(4)
        version = model.selectbox("Model version", [None, *choices.models], key="q_model")
        group = category.selectbox("Category", [None, *choices.categories], key="q_category")
        low, high = amount.slider(
            "Amount", 0.0, choices.max_amount, (0.0, choices.max_amount), key="q_amount"
        )
        least = score.slider("Fraud probability at least", 0.0, 1.0, 0.0, key="q_score")
    return reviews.CaseFilter(
        days=DAYS[period],
        status=state,
        kind=chosen,
        model=version,
        category=group,
        amount_min=low or None,
        amount_max=high if high < choices.max_amount else None,
        score_min=least or None,
        search=query,
    )


def literal(text: str) -> str:
    """`text` shown as it is inside Markdown: a masked card's asterisks are not emphasis."""
    return text.replace("*", r"\*")


def queue_view(url: str) -> None:
    where = case_filter(url)
    size_column, page_column, count_column = st.columns([1, 1, 3])
    size = size_column.selectbox("Cases per page", CASE_SIZES, index=0, key="q_size")
    first = reviews.review_cases(engine(url), where, 1, size)
    pages = queries.page_count(first.matching, size)
    page = int(page_column.number_input("Page", 1, pages, 1, key="q_page"))
    shown = first if page == 1 else reviews.review_cases(engine(url), where, page, size)
    count_column.markdown(
        f"<br>**{wording.format_count(shown.matching)}** cases match · page {page} of {pages} "
        "· live alerts first, then the riskiest",
        unsafe_allow_html=True,
    )
    if not shown.cases:
        st.info("No case matches these filters.")
        return
    for case in shown.cases:
        with st.container(border=True, key=f"case-{case.key}"):
            facts, actions = st.columns([4, 1])
            facts.markdown(
                f"**{literal(case.card)} · {literal(case.cardholder)}** · {case.alerts} alert"
                f"{'s' if case.alerts != 1 else ''} ({case.open_alerts} without a verdict) · "
                f"{'live alert' if case.live else 'catch-up digest'} · top probability "
                f"**{wording.format_percent(case.top_probability)}** · latest "
                f"{case.last_time:%a %d %b %Y %H:%M} · {case.merchants}"
                + (f" · :orange[claimed by **{case.claimed_by}**]" if case.claimed_by else "")
            )
            actions.button(
                "Open case", key=f"open-{case.key}", on_click=open_case, args=(case.key,)
            )


def review_page() -> None:
    url = queries.report_database_url()
    if not allowed("review"):  # not listed for such roles; checked again all the same
        st.error("Your role may not review alerts.")
        return
    st.title(":material/fact_check: To review")
    if done := st.session_state.pop("reviewed", None):
        st.success(done, icon=":material/check_circle:")
    if failed := st.session_state.pop("review_error", None):
        st.error(f"Not saved. {failed}", icon=":material/error:")
    st.caption(
        "One case per card episode. Claim a case to work it; a verdict is kept with your name, "
        "a later one supersedes it."
    )
    trans_num = st.query_params.get(wording.CASE_PARAM)
    if trans_num:
        case_view(url, trans_num)
    else:
        queue_view(url)


# -- admins: accounts and the audit trail (through fraud_report_admin) ------------------------------
def users_page() -> None:
    st.title(":material/group: Users")
    if not allowed("users"):
        st.error("Only admins manage users.")
        return
    url = reviews.admin_database_url()
    if done := st.session_state.pop("users_done", None):
        st.success(done)
    with st.form("add_user", clear_on_submit=True):
        name, role = st.columns(2)
        username = name.text_input("New user")
        chosen = role.selectbox("Role", users.ROLES)
        if st.form_submit_button("Add user") and username:
            conn = engine(url).raw_connection()
            try:
                password = users.add(conn.cursor(), username, chosen, current_user())
                conn.commit()
            except Exception as error:  # an existing name, a name the CHECK refuses
                st.error(f"Not added: {str(error).splitlines()[0]}")
            else:
                st.session_state["users_done"] = (
                    f"User {username} added ({chosen}); one-time password: {password}"
                )
                st.rerun()
            finally:
                conn.close()
    conn = engine(url).raw_connection()
    try:
        accounts = users.listed(conn.cursor())
    finally:
        conn.close()
    for account in accounts:
        who, state, action = st.columns([2, 2, 1])
        who.markdown(f"**{account.username}** · {account.role}")
        state.markdown("disabled" if account.disabled else "enabled")
        if not account.disabled and account.username != current_user():
            action.button(
                "Disable",
                key=f"disable-{account.username}",
                on_click=disable,
                args=(account.username,),
            )


def disable(username: str) -> None:
    conn = engine(reviews.admin_database_url()).raw_connection()
    try:
        users.disable(conn.cursor(), username, current_user())
        conn.commit()
    finally:
        conn.close()
    st.session_state["users_done"] = f"User {username} disabled."


def audit_page() -> None:
    st.title(":material/policy: Audit")
    if not allowed("audit"):
        st.error("Only admins read the audit trail.")
        return
    conn = engine(reviews.admin_database_url()).raw_connection()
    try:
        cur = conn.cursor()
        entries = audit.recent(cur, 500)
        verdict = audit.verify(cur)
    finally:
        conn.close()
    if verdict.ok:
        st.success(f"Chain intact over {verdict.rows} rows.", icon=":material/verified:")
    else:
        st.error(f"Chain broken at row {verdict.broken_at}: {verdict.why}.")
    st.dataframe(
        pd.DataFrame(
            [(e.id, e.at, e.actor, e.action, e.target, e.source) for e in entries],
            columns=["Row", "When", "Who", "What", "On", "From"],
        ),
        hide_index=True,
        key="audit",
    )


# -- navigation -----------------------------------------------------------------------------------
def pages() -> list[Any]:
    """The pages the signed-in person's role may open; any other address shows none."""
    listed = [st.Page(report_page, title="Morning report", icon=":material/shield:", default=True)]
    if allowed("review"):
        listed.append(
            st.Page(review_page, title="To review", icon=":material/fact_check:", url_path="review")
        )
    listed.append(
        st.Page(
            model_health_page.render,
            title="Model health",
            icon=":material/monitor_heart:",
            url_path="model-health",
        )
    )
    if allowed("rules"):
        listed.append(
            st.Page(rules_page.render, title="Rules", icon=":material/rule:", url_path="rules")
        )
    if allowed("users"):
        listed.append(st.Page(users_page, title="Users", icon=":material/group:", url_path="users"))
    if allowed("audit"):
        listed.append(
            st.Page(audit_page, title="Audit", icon=":material/policy:", url_path="audit")
        )
    return listed


# Every signed-in page's address (those of `pages()`, whatever the role; "rules" too).
PAGE_PATHS = ("review", "model-health", "users", "audit", "rules")


def sign_in_page() -> None:
    if signed_in(get_settings()):
        st.rerun()


def sign_out_box() -> None:
    with st.sidebar:
        st.markdown(f"Signed in as **{current_user()}** ({st.session_state.get('role')})")
        if st.button("Sign out"):
            audited(audit.SIGN_OUT, current_user())
            st.session_state.clear()
            if single_sign_on() and st.user.is_logged_in:
                st.logout()  # the provider's cookie too
            st.rerun()


def explain(error: SQLAlchemyError | psycopg2.Error, url: str) -> str:
    """A database error, said plainly (host and database named, never the password)."""
    where = make_url(url)
    target = f"database `{where.database}` on {where.host or 'local socket'}:{where.port or 5432}"
    message = str(getattr(error, "orig", error)).strip().splitlines()[0]
    if "does not exist" in message and "fraud_" in message:
        return (
            f"The report's SQL objects are missing in {target}: run `fraud-pipeline db migrate`. "
            f"({message})"
        )
    if "permission denied" in message:
        return f"Role `{where.username}` may not read the report in {target}. ({message})"
    return f"Cannot reach the report database ({target}): {message}"


def main() -> None:
    try:
        settings = get_settings()
    except ValueError as error:  # pydantic's ValidationError is a ValueError
        st.error(f"The report is misconfigured: {error}")
        return
    if not st.session_state.get("user"):
        # The sign-in form answers at every page's address, so a link to one (an alert email's
        # case, a bookmark) is still the page shown once the person has signed in.
        gate = [
            st.Page(sign_in_page, title="Sign in", url_path=path or "sign-in", default=not path)
            for path in ("", *PAGE_PATHS)
        ]
        st.navigation(gate, position="hidden").run()
        return
    navigation = st.navigation(pages())
    # A table's own "Download as CSV" would be an export nobody audits: the audited buttons only.
    st.html(HIDE_TABLE_DOWNLOAD)
    sign_out_box()
    url = queries.report_database_url(settings)
    try:
        navigation.run()
    except SQLAlchemyError as error:
        st.error(explain(error, url), icon=":material/error:")


main()
