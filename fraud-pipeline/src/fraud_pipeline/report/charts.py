"""The morning report's charts (Altair), drawn from `report`'s aggregates.

One colour code everywhere: red is fraud, blue-grey is legitimate. The map needs no tile server:
the day's merchant activity, in grey, draws the country, and frauds sit on top in red.
"""

from __future__ import annotations

from typing import Final

import altair as alt
import pandas as pd

from fraud_pipeline.report.queries import FRAUD_LABEL, LEGIT_LABEL, amount_band_labels

FRAUD_COLOR: Final = "#d62839"
LEGIT_COLOR: Final = "#7b93b8"
BACKDROP_COLOR: Final = "#9fb0c6"
KIND_SCALE: Final = alt.Scale(domain=[FRAUD_LABEL, LEGIT_LABEL], range=[FRAUD_COLOR, LEGIT_COLOR])
HEIGHT: Final = 300


def hourly_chart(hours: pd.DataFrame) -> alt.LayerChart:
    """Legitimate payments as bars, frauds as a red line on their own axis (they are ~0.5%)."""
    base = alt.Chart(hours).encode(
        x=alt.X("hour:O", title="Hour (business time)", axis=alt.Axis(labelAngle=0))
    )
    tooltip = [
        alt.Tooltip("hour:O", title="Hour"),
        alt.Tooltip("payments:Q", title="Payments", format=","),
        alt.Tooltip("frauds:Q", title="Frauds", format=","),
    ]
    bars = base.mark_bar(color=LEGIT_COLOR, opacity=0.85).encode(
        y=alt.Y("legitimate:Q", title="Legitimate payments", axis=alt.Axis(titleColor=LEGIT_COLOR)),
        tooltip=tooltip,
    )
    line = base.mark_line(
        color=FRAUD_COLOR, strokeWidth=2.5, point=alt.OverlayMarkDef(color=FRAUD_COLOR)
    ).encode(
        y=alt.Y("frauds:Q", title="Frauds detected", axis=alt.Axis(titleColor=FRAUD_COLOR)),
        tooltip=tooltip,
    )
    return alt.layer(bars, line).resolve_scale(y="independent").properties(height=HEIGHT)


def category_chart(categories: pd.DataFrame) -> alt.Chart:
    """Frauds per category, most first; the tooltip adds the category's rate and money at risk."""
    shown = categories[categories["frauds"] > 0]
    return (
        alt.Chart(shown)
        .mark_bar(color=FRAUD_COLOR, cornerRadiusEnd=3)
        .encode(
            x=alt.X("frauds:Q", title="Frauds detected"),
            y=alt.Y("category:N", sort="-x", title=None, axis=alt.Axis(labelOverlap=False)),
            tooltip=[
                alt.Tooltip("category:N", title="Category"),
                alt.Tooltip("frauds:Q", title="Frauds", format=","),
                alt.Tooltip("payments:Q", title="Payments", format=","),
                alt.Tooltip("fraud_rate:Q", title="Fraud rate", format=".2%"),
                alt.Tooltip("amount_at_risk:Q", title="Amount at risk", format="$,.2f"),
            ],
        )
        .properties(height=HEIGHT)
    )


def amount_chart(distribution: pd.DataFrame) -> alt.Chart:
    """Each class's payments by amount band, as shares of the class so both shapes show."""
    return (
        alt.Chart(distribution)
        .mark_bar()
        .encode(
            x=alt.X(
                "amount_band:N",
                sort=amount_band_labels(),
                title="Amount",
                axis=alt.Axis(labelAngle=0),
            ),
            xOffset=alt.XOffset("kind:N", sort=[FRAUD_LABEL, LEGIT_LABEL]),
            y=alt.Y("share:Q", title="Share of its class", axis=alt.Axis(format="%")),
            color=alt.Color(
                "kind:N", scale=KIND_SCALE, title=None, legend=alt.Legend(orient="top")
            ),
            tooltip=[
                alt.Tooltip("kind:N", title="Class"),
                alt.Tooltip("amount_band:N", title="Amount"),
                alt.Tooltip("payments:Q", title="Payments", format=","),
                alt.Tooltip("share:Q", title="Share", format=".1%"),
            ],
        )
        .properties(height=HEIGHT)
    )


def fraud_map(density: pd.DataFrame, frauds: pd.DataFrame) -> alt.LayerChart:
    """Fraud merchant locations (sized by amount) over the day's merchant activity."""
    projection = {"type": "albersUsa"}
    backdrop = (
        alt.Chart(density)
        .mark_circle(color=BACKDROP_COLOR, opacity=0.5)
        .encode(
            longitude="lon:Q",
            latitude="lat:Q",
            size=alt.Size("payments:Q", scale=alt.Scale(range=[6, 70]), legend=None),
        )
        .project(**projection)
    )
    points = (
        alt.Chart(frauds)
        .mark_circle(color=FRAUD_COLOR, opacity=0.8, stroke="white", strokeWidth=0.6)
        .encode(
            longitude="lon:Q",
            latitude="lat:Q",
            size=alt.Size("amount:Q", scale=alt.Scale(range=[15, 220]), title="Amount ($)"),
            tooltip=[
                alt.Tooltip("merchant:N", title="Merchant"),
                alt.Tooltip("category:N", title="Category"),
                alt.Tooltip("amount:Q", title="Amount", format="$,.2f"),
                alt.Tooltip("probability:Q", title="Probability", format=".1%"),
                alt.Tooltip("city:N", title="Cardholder city"),
                alt.Tooltip("state:N", title="State"),
            ],
        )
        .project(**projection)
    )
    return alt.layer(backdrop, points).resolve_scale(size="independent").properties(height=HEIGHT)


def health_chart(rows: pd.DataFrame, value_format: str) -> alt.LayerChart:
    """A figure over days, one line per series (PSI: score and each feature), its threshold as
    a dashed red line and the days it crossed it as red points."""
    base = alt.Chart(rows).encode(x=alt.X("day:T", title=None))
    tooltip = [
        alt.Tooltip("day:T", title="Day"),
        alt.Tooltip("series:N", title="Figure"),
        alt.Tooltip("value:Q", title="Value", format=value_format),
        alt.Tooltip("threshold:Q", title="Threshold", format=value_format),
    ]
    lines = base.mark_line(point=True).encode(
        y=alt.Y("value:Q", title=None, axis=alt.Axis(format=value_format)),
        color=alt.Color(
            "series:N",
            title=None,
            # one figure: its title says what it is; several (PSI): which line is which
            legend=alt.Legend(orient="bottom", columns=3, labelLimit=240)
            if rows["series"].nunique() > 1
            else None,
        ),
        tooltip=tooltip,
    )
    threshold = (
        base.transform_filter("isValid(datum.threshold)")
        .mark_line(color=FRAUD_COLOR, strokeDash=[6, 4], strokeWidth=1.5)
        .encode(y="threshold:Q", detail="series:N")
    )
    breached = (
        base.transform_filter("datum.breached")
        .mark_point(color=FRAUD_COLOR, size=120, filled=True)
        .encode(y="value:Q", tooltip=tooltip)
    )
    return alt.LayerChart(layer=[lines, threshold, breached], height=HEIGHT)
