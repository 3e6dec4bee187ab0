"""The Model health page: the daily monitor's figures over time, with their thresholds, and
champion against challenger on the same payments while a challenger is shadow-scored.

Layout only: `render()` draws what `fraud_pipeline.report.model_health` reads from the
`model_health` table (written each morning by the fraud_model_monitor DAG), as the report role.
The report app adds it to its navigation; the login is the app's.
"""

from __future__ import annotations

from datetime import date

import pandas as pd
import streamlit as st
from report_engine import engine, ttl

from fraud_pipeline import clock
from fraud_pipeline.report import charts, model_health, queries, shadow, wording

WARN = ":material/warning:"
TABLE_COLUMNS = {
    "Figure": st.column_config.TextColumn("Figure"),
    "Value": st.column_config.NumberColumn("Value", format="%.4f"),
    "Threshold": st.column_config.NumberColumn("Threshold", format="%.4f"),
    "Breached": st.column_config.CheckboxColumn("Breached"),
}


SHADOW_COLUMNS = {
    "day": st.column_config.DateColumn("Day"),
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


@st.cache_data(ttl=ttl(), show_spinner=False)
def shadow_daily(url: str, until: date) -> pd.DataFrame:
    return shadow.daily_comparison(engine(url), until)


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


def champion_vs_challenger(daily: pd.DataFrame) -> None:
    """The shadow scores: champion and challenger on the same payments, over the span."""
    st.header("Champion and challenger (shadow scoring)")
    if daily.empty:
        st.info(
            "No shadow scores: while a challenger is registered (`fraud-pipeline model "
            "register`), each pipeline run scores its payments with it too, after the champion.",
            icon=":material/info:",
        )
        return
    pair = shadow.totals(daily).iloc[0]
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
    table = daily.sort_values("day", ascending=False)[list(SHADOW_COLUMNS)]
    st.dataframe(table, hide_index=True, column_config=SHADOW_COLUMNS, key="shadow_daily")


def render() -> None:
    st.title("Model health")
    url = queries.report_database_url()
    rows = history(url, clock.today())
    if rows.empty:
        st.info(
            "No model health figures yet: the fraud_model_monitor DAG computes yesterday's "
            "each morning, once the day is loaded.",
            icon=":material/info:",
        )
    else:
        monitor_figures(rows)
    champion_vs_challenger(shadow_daily(url, clock.today()))


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
