"""Champion against challenger in the report (issue 17): `fraud_shadow_comparison`, read as the
report role, against counts computed here from the seeded rows; and the Model health page's
section drawing them (AppTest)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
import psycopg2
import pytest
from psycopg2.extras import execute_values
from sqlalchemy import create_engine
from streamlit.testing.v1 import AppTest

from fraud_pipeline import clock
from fraud_pipeline.config import REPO_ROOT
from fraud_pipeline.report import queries, shadow
from fraud_pipeline.storage.upsert import upsert_scored
from tests.support.factories import scored_payments

PAGE = str(REPO_ROOT / "tests" / "support" / "model_health_app.py")
CHALLENGER = "xgb-challenger"


def seed(url: str) -> pd.DataFrame:
    """300 payments of yesterday with labels (some unknown), the challenger's scores for 250 of
    them, and analysts' verdicts on two (a label contradicted, a missing one supplied); the
    rows, with the truth that counts."""
    rng = np.random.default_rng(3)
    start = clock.day_start(clock.yesterday()) + timedelta(hours=1)
    payments = scored_payments(300, start=start, seed=4, step_s=60)
    labels = (rng.random(300) < 0.2).astype(int)
    payments["is_fraud"] = pd.array(
        [None if i % 10 == 0 else int(v) for i, v in enumerate(labels)], dtype="Int64"
    )
    challenger = np.clip(payments["fraud_probability"] + rng.normal(0, 0.2, 300), 0, 1)
    payments["challenger"] = challenger
    payments["shadowed"] = np.arange(300) < 250
    conn = psycopg2.connect(url)
    upsert_scored(conn, payments.drop(columns=["challenger", "shadowed"]))
    with conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO model_versions (version, location, sha256) VALUES (%s, %s, '{}')",
            (CHALLENGER, "/registry/xgb-challenger"),
        )
        shadowed = payments[payments["shadowed"]]
        execute_values(
            cur,
            "INSERT INTO shadow_scores (trans_num, model_version, fraud_probability, "
            "is_fraud_pred, threshold) VALUES %s",
            [
                (t, CHALLENGER, float(p), bool(p >= 0.4), 0.4)
                for t, p in zip(shadowed["trans_num"], shadowed["challenger"], strict=True)
            ],
        )
        flagged = payments[payments["is_fraud_pred"] & payments["shadowed"]]
        verdicts = {  # each differs from the label: the verdict is the truth that counts
            flagged.loc[flagged["is_fraud"] == 1, "trans_num"].iat[0]: "false_alarm",
            flagged.loc[flagged["is_fraud"].isna(), "trans_num"].iat[0]: "confirmed_fraud",
        }
        for trans_num, verdict in verdicts.items():
            cur.execute(
                "INSERT INTO alert_reviews (trans_num, verdict, analyst) VALUES (%s, %s, 'alice')",
                (trans_num, verdict),
            )
    conn.close()
    truth = payments["is_fraud"].astype("boolean")
    for trans_num, verdict in verdicts.items():
        truth[payments["trans_num"] == trans_num] = verdict == "confirmed_fraud"
    return payments.assign(truth=truth, challenger_flag=payments["challenger"] >= 0.4)


def expected(payments: pd.DataFrame) -> dict[str, Any]:
    rows = payments[payments["shadowed"]]
    known = rows[rows["truth"].notna()]
    frauds = known["truth"].astype(bool)
    out: dict[str, Any] = {
        "shadowed": len(rows),
        "agreement": float((rows["is_fraud_pred"] == rows["challenger_flag"]).mean()),
        "labelled": len(known),
        "frauds": int(frauds.sum()),
    }
    for who, flags in (("champion", "is_fraud_pred"), ("challenger", "challenger_flag")):
        flagged = known[flags].astype(bool)
        out[f"{who}_flag_share"] = float(rows[flags].mean())
        out[f"{who}_precision"] = float((flagged & frauds).sum() / flagged.sum())
        out[f"{who}_recall"] = float((flagged & frauds).sum() / frauds.sum())
    return out


@pytest.mark.clock
def test_the_comparison_counts_the_same_payments_for_both(clean_db):
    payments = seed(clean_db)
    want = expected(payments)
    engine = create_engine(queries.sqlalchemy_url(queries.report_database_url()))
    try:
        daily = shadow.daily_comparison(engine, clock.yesterday())
        assert shadow.daily_comparison(engine, clock.yesterday() - timedelta(days=1)).empty
    finally:
        engine.dispose()
    (day,) = daily.to_dict(orient="records")
    assert day["day"].date() == clock.yesterday()
    assert (day["champion_version"], day["challenger_version"]) == ("test-model", CHALLENGER)
    assert want["labelled"] < want["shadowed"] and 0 < want["agreement"] < 1
    for name, value in want.items():
        assert day[name] == pytest.approx(value), name
    (total,) = shadow.totals(daily).to_dict(orient="records")
    assert total["shadowed"] == want["shadowed"]
    assert total["challenger_recall"] == pytest.approx(want["challenger_recall"])


@pytest.mark.clock
@pytest.mark.usefixtures("report_env")
def test_the_model_health_page_shows_champion_against_challenger(clean_db):
    want = expected(seed(clean_db))
    app = AppTest.from_file(PAGE, default_timeout=60)
    app.run()
    assert not app.exception, app.exception
    assert "fraud_model_monitor DAG" in app.info[0].value  # no monitor figures: said, then on
    assert app.header[0].value == "Champion and challenger (shadow scoring)"
    shown = {m.label: m.value for m in app.metric}
    assert shown["Shadow-scored"] == f"{want['shadowed']:,}"
    assert shown["Agreement"] == f"{want['agreement']:.2%}"
    assert shown["Precision: champion → challenger"] == (
        f"{want['champion_precision']:.0%} → {want['challenger_precision']:.0%}"
    )
    assert shown["Recall: champion → challenger"] == (
        f"{want['champion_recall']:.0%} → {want['challenger_recall']:.0%}"
    )
    table = app.dataframe[0].value
    assert list(table["shadowed"]) == [want["shadowed"]]


@pytest.mark.usefixtures("report_env")
def test_without_shadow_scores_the_page_says_how_to_get_them(clean_db):
    app = AppTest.from_file(PAGE, default_timeout=60)
    app.run()
    assert not app.exception, app.exception
    assert "fraud-pipeline model register" in app.info[-1].value
