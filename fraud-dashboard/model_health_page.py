"""The Model health page: the model served now, the daily monitor's figures over time, with
their thresholds, the current champion against the current challenger on the same payments while
a challenger is shadow-scored, and the model life cycle's history (every event, append-only).

Layout only: `render()` draws what `fraud_pipeline.report.model_health` reads from the
`model_health` table (written each morning by the fraud_model_monitor DAG), as the report role.
The report app adds it to its navigation; the login is the app's.
"""

from __future__ import annotations

from datetime import date

import pandas as pd
import streamlit as st
from report_engine import engine, ttl

from fraud_pipeline import clock, wording
from fraud_pipeline.report import charts, model_health, queries, shadow

WARN = ":material/warning:"
TABLE_COLUMNS = {
    "Figure": st.column_config.TextColumn("Figure"),
    "Value": st.column_config.NumberColumn("Value", format="%.4f"),
    "Threshold": st.column_config.NumberColumn("Threshold", format="%.4f"),
    "Breached": st.column_config.CheckboxColumn("Breached"),
}


SHADOW_COLUMNS = {
    "day": st.column_config.DateColumn("Day"),
    "champion_version": st.column_config.TextColumn("Champion"),
    "challenger_version": st.column_config.TextColumn("Challenger"),
    "shadowed": st.column_config.NumberColumn("Shadow-scored", format="%d"),
    "champion_flag_share": st.column_config.NumberColumn("Champion flags", format="percent"),
    "challenger_flag_share": st.column_config.NumberColumn("Challenger flags", format="percent"),
    "agreement": st.column_config.NumberColumn("Agreement", format="percent"),
    "champion_precision": st.column_config.NumberColumn("Champion precision", format="percent"),
    "challenger_precision": st.column_config.NumberColumn("Challenger precision", format="percent"),
    "champion_recall": st.column_config.NumberColumn("Champion recall", format="percent"),
    "challenger_recall": st.column_config.NumberColumn("Challenger recall", format="percent"),
}


@st.cache_data(ttl=ttl(), show_spinner=False)
def history(url: str, until: date) -> pd.DataFrame:
    return model_health.health_history(engine(url), until)


EVENT_COLUMNS = {
    "at": st.column_config.DatetimeColumn("When", format="YYYY-MM-DD HH:mm"),
    "version": st.column_config.TextColumn("Model version"),
    "event": st.column_config.TextColumn("Event"),
    "previous": st.column_config.TextColumn("In place of"),
    "actor": st.column_config.TextColumn("By"),
    "reason": st.column_config.TextColumn("Why", width="large"),
}


@st.cache_data(ttl=ttl(), show_spinner=False)
def shadow_daily(url: str, until: date) -> pd.DataFrame:
    return shadow.daily_comparison(engine(url), until)


@st.cache_data(ttl=ttl(), show_spinner=False)
def current_models(url: str) -> shadow.CurrentModels:
    return shadow.current_models(engine(url))


@st.cache_data(ttl=ttl(), show_spinner=False)
def model_events(url: str, until: date) -> pd.DataFrame:
    return model_health.model_events(engine(url), until)


def summary(day: pd.DataFrame) -> None:
    """The last computed day: its breached figures first, then every figure."""
    when = day["day"].max().date()
    versions = ", ".join(sorted(day["model_version"].unique()))
    st.caption(f"Last computed day: {when.isoformat()} · model {versions}")
    breached = day[day["breached"]]
    if breached.empty:
        st.success("Every figure is within its threshold.", icon=":material/check_circle:")
    else:
        names = ", ".join(breached["metric"])
        st.warning(f"Over threshold on {when.isoformat()}: {names}", icon=WARN)
    unjudged = model_health.not_judged(day)
    if unjudged:
        st.caption(
            f"Not judged (no threshold yet): {', '.join(unjudged)}. Drift of the score and of "
            "card-history features waits until 30 days of payments are loaded before the day; "
            "the alert volume, for an earlier day to compare with."
        )
    figures = dict(zip(day["metric"], day["value"], strict=True))
    score, flagged, alerts, quarantined, precision = st.columns(5)
    score.metric("Score drift (PSI)", _number(figures.get("psi_score"), "{:.3f}"))
    flagged.metric("Share flagged", wording.format_percent(figures.get("flag_share"), 2))
    alerts.metric("Alerts", _number(figures.get("alert_volume"), "{:,.0f}"))
    quarantined.metric("Quarantined", wording.format_percent(figures.get("quarantine_share"), 2))
    precision.metric(
        "Confirmed precision",
        wording.format_percent(figures.get("confirmed_precision"), 0),
        f"{_number(figures.get('review_count'), '{:,.0f}')} reviews",
        delta_color="off",
        delta_arrow="off",
    )
    table = day.rename(
        columns={
            "metric": "Figure",
            "value": "Value",
            "threshold": "Threshold",
            "breached": "Breached",
        }
    )[list(TABLE_COLUMNS)]
    with st.expander("Every figure of the day"):
        st.dataframe(table, hide_index=True, column_config=TABLE_COLUMNS, key="health_figures")


def _percent(value: float | None, digits: int) -> str:
    return wording.format_percent(None if value is None or pd.isna(value) else value, digits)


def _number(value: float | None, pattern: str) -> str:
    return wording.NO_FIGURE if value is None or pd.isna(value) else pattern.format(value)


def champion_vs_challenger(daily: pd.DataFrame, models: shadow.CurrentModels) -> None:
    """The shadow scores: the current champion against the current challenger on the same
    payments, over the span; every pair of the span in the daily table, both named."""
    st.header("Champion and challenger (shadow scoring)")
    if daily.empty:
        st.info(
            "No shadow scores: while a challenger is registered (`fraud-pipeline model "
            "register`), each pipeline run scores its payments with it too, after the champion.",
            icon=":material/info:",
        )
        return
    pair = shadow.current_pair(daily, models)
    if pair is None:
        st.info(
            f"No shadow scores yet for the current champion {models.champion} against the "
            f"current challenger {models.challenger or '(none registered)'}: the table below "
            "shows earlier pairs.",
            icon=":material/info:",
        )
    else:
        st.caption(
            f"Champion {pair['champion_version']} against challenger "
            f"{pair['challenger_version']}, on the same {pair['shadowed']:,} payments "
            f"({shadow.HISTORY_DAYS} days; precision and recall on the "
            f"{pair['labelled']:,} whose truth is known)"
        )
        scored, agreement, flags, precision, recall = st.columns(5)
        scored.metric("Shadow-scored", f"{pair['shadowed']:,}")
        agreement.metric("Agreement", _percent(pair["agreement"], 2))
        for column, label, figure, digits in (
            (flags, "Flagged", "flag_share", 2),
            (precision, "Precision", "precision", 0),
            (recall, "Recall", "recall", 0),
        ):
            champion = _percent(pair[f"champion_{figure}"], digits)
            challenger = _percent(pair[f"challenger_{figure}"], digits)
            column.metric(f"{label}: champion → challenger", f"{champion} → {challenger}")
    table = daily.sort_values(["day", "challenger_version"], ascending=False)[list(SHADOW_COLUMNS)]
    st.dataframe(table, hide_index=True, column_config=SHADOW_COLUMNS, key="shadow_daily")


def served_model(models: shadow.CurrentModels) -> None:
    """Which model scores the payments now (the last stored one's), and the registry's pair."""
    when = models.served_at.strftime("%Y-%m-%d %H:%M") if models.served_at is not None else None
    served = f"{models.served} (last payment stored {when})" if models.served else "none yet"
    st.caption(
        f"Served model: {served} · champion {models.champion or '—'} · challenger "
        f"{models.challenger or '—'}"
    )


def life_cycle(events: pd.DataFrame) -> None:
    """Every event of the model life cycle, newest first: nothing overwrites it."""
    st.header("Model life cycle")
    if events.empty:
        st.caption("No model event yet (`fraud-pipeline db migrate` records the first champion).")
        return
    st.dataframe(
        events[list(EVENT_COLUMNS)],
        hide_index=True,
        column_config=EVENT_COLUMNS,
        key="model_events",
    )


def render() -> None:
    st.title("Model health")
    url = queries.report_database_url()
    models = current_models(url)
    served_model(models)
    rows = history(url, clock.today())
    if rows.empty:
        st.info(
            "No model health figures yet: the fraud_model_monitor DAG computes yesterday's "
            "each morning, once the day is loaded.",
            icon=":material/info:",
        )
    else:
        monitor_figures(rows)
    champion_vs_challenger(shadow_daily(url, clock.today()), models)
    life_cycle(model_events(url, clock.today()))


def monitor_figures(rows: pd.DataFrame) -> None:
    """The daily monitor's figures: the last day, then each figure over time."""
    summary(model_health.latest(rows))
    charted = [(t, model_health.chart_rows(rows, m), f) for t, m, f in model_health.CHARTS]
    charted = [(t, r, f) for t, r, f in charted if not r.empty]
    for start in range(0, len(charted), 2):
        for column, (title, chart_rows, value_format) in zip(
            st.columns(2), charted[start : start + 2], strict=False
        ):
            with column:
                st.subheader(title)
                st.altair_chart(
                    charts.health_chart(chart_rows, value_format),
                    width="stretch",
                    height=charts.HEIGHT,
                )
