"""The Model health page (AppTest) on monitor figures seeded in PostgreSQL, read as the report
role (which may SELECT model_health: migration 017)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pandas as pd
import psycopg2
import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from fraud_pipeline import clock
from fraud_pipeline.config import REPO_ROOT
from tests.support.report import HEALTH_FEATURES, seed_model_health

PAGE = str(REPO_ROOT / "tests" / "support" / "model_health_app.py")


def chart_data(chart: Any) -> pd.DataFrame:
    """The rows a Vega-Lite chart draws (Streamlit ships them as Arrow IPC)."""
    (dataset,) = chart.proto.datasets
    return pa.ipc.open_stream(dataset.data.data).read_pandas()


def health(url: str, day: date, metric: str) -> float:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT value FROM model_health WHERE day = %s AND metric = %s", (day, metric))
        (value,) = cur.fetchone()
    conn.close()
    return float(value)


def rendered() -> AppTest:
    app = AppTest.from_file(PAGE, default_timeout=60)
    app.run()
    assert not app.exception, app.exception
    assert not app.error, [e.value for e in app.error]
    return app


@pytest.mark.clock
@pytest.mark.usefixtures("report_env")
def test_the_page_draws_each_figure_over_time_with_its_threshold(clean_db: str) -> None:
    yesterday = clock.yesterday()
    seed_model_health(clean_db, yesterday)
    app = rendered()
    assert app.title[0].value == "Model health"
    assert app.caption[0].value.startswith("Served model: none yet")  # no payment stored
    assert f"Last computed day: {yesterday.isoformat()} · model xgb-test" in app.caption[1].value
    (warning,) = app.warning
    over_threshold = "alert_volume, flag_share, psi_amt"
    assert warning.value == f"Over threshold on {yesterday.isoformat()}: {over_threshold}"
    shown = {m.label: (m.value, m.delta) for m in app.metric}
    assert shown["Score drift (PSI)"][0] == f"{health(clean_db, yesterday, 'psi_score'):.3f}"
    precision = health(clean_db, yesterday, "confirmed_precision")
    assert shown["Confirmed precision"] == (f"{precision:.0%}", "64 reviews")
    charts = app.get("vega_lite_chart")
    assert len(charts) == 5
    psi = charts[0].proto.spec
    assert '"strokeDash"' in psi and "isValid(datum.threshold)" in psi  # the threshold line
    assert "datum.breached" in psi  # the days over it, marked
    drawn = chart_data(charts[0])
    assert set(drawn["series"]) == {"score", *HEALTH_FEATURES}  # one line per figure
    assert set(drawn["threshold"]) == {0.2} and len(drawn) == 30 * 6
    over = drawn[drawn["breached"]]
    assert list(over["series"]) == ["amt"] and list(over["value"]) == [0.35]
    volumes = chart_data(charts[2])
    assert volumes["value"].iloc[-1] == float(shown["Alerts"][0].replace(",", ""))
    days = pd.to_datetime(drawn["day"]).dt.date
    assert (days.min(), days.max()) == (yesterday - timedelta(days=29), yesterday)


@pytest.mark.usefixtures("report_env")
def test_without_figures_the_page_says_where_they_come_from(clean_db: str) -> None:
    app = rendered()
    assert "fraud_model_monitor DAG" in app.info[0].value
    assert not app.get("vega_lite_chart")


@pytest.mark.clock
@pytest.mark.usefixtures("report_env")
def test_figures_without_a_threshold_are_said_not_judged(clean_db: str) -> None:
    """A fresh start: the monitor stores the score's drift with no threshold (monitoring.health);
    the page must not let "every figure is within its threshold" stand alone for it."""
    yesterday = clock.yesterday()
    seed_model_health(clean_db, yesterday)
    with psycopg2.connect(clean_db) as conn, conn.cursor() as cur:
        cur.execute(
            "UPDATE model_health SET threshold = NULL, breached = false "
            "WHERE day = %s AND metric IN ('psi_score', 'psi_amt')",
            (yesterday,),
        )
    conn.close()
    app = rendered()
    notes = [c.value for c in app.caption if c.value.startswith("Not judged")]
    assert notes == [
        "Not judged (no threshold yet): psi_amt, psi_score. Drift of the score and of "
        "card-history features waits until 30 days of payments are loaded before the day; "
        "the alert volume, for an earlier day to compare with."
    ]
    assert "psi_amt" not in app.warning[0].value  # no longer over a threshold
