"""Model health compares the current champion with the current challenger (issue 33), not the
pair that sorts first or has the most payments; every table names both; the page shows the
served model and the life cycle's history. Read as the report role; the page under AppTest."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import psycopg2
import pytest
from psycopg2.extras import execute_values
from sqlalchemy import create_engine
from streamlit.testing.v1 import AppTest

from fraud_pipeline import clock
from fraud_pipeline.config import REPO_ROOT
from fraud_pipeline.registry import versions
from fraud_pipeline.report import model_health, queries, shadow
from fraud_pipeline.storage.upsert import upsert_scored
from tests.support.factories import scored_payments

PAGE = str(REPO_ROOT / "tests" / "support" / "model_health_app.py")
CHAMPION, OLD_CHALLENGER, CHALLENGER = "xgb-a", "xgb-b", "xgb-c"


def seed(url: str) -> None:
    """Yesterday's 300 payments scored by the champion; the challenger registered first
    shadow-scored 250 of them, the one registered last (the current one) 40."""
    start = clock.day_start(clock.yesterday()) + timedelta(hours=1)
    payments = scored_payments(300, start=start, seed=4, step_s=60).assign(model_version=CHAMPION)
    conn = psycopg2.connect(url)
    upsert_scored(conn, payments)
    rng = np.random.default_rng(1)
    with conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO model_versions (version, location, sha256, status, promoted_at, "
            "registered_at) VALUES (%s, '/r/a', '{}', 'champion', now(), now() - interval '3 d'),"
            " (%s, '/r/b', '{}', 'challenger', NULL, now() - interval '2 d'),"
            " (%s, '/r/c', '{}', 'challenger', NULL, now() - interval '1 d')",
            (CHAMPION, OLD_CHALLENGER, CHALLENGER),
        )
        for version, count in ((OLD_CHALLENGER, 250), (CHALLENGER, 40)):
            execute_values(
                cur,
                "INSERT INTO shadow_scores (trans_num, model_version, fraud_probability, "
                "is_fraud_pred, threshold) VALUES %s",
                [
                    (t, version, float(p), bool(p >= 0.5), 0.5)
                    for t, p in zip(payments["trans_num"][:count], rng.random(count), strict=True)
                ],
            )
    with conn:
        versions.record_event(conn, CHAMPION, "promoted", "fraud_retrain", "passed the gate: X")
        versions.record_event(conn, CHAMPION, "rolled_back", "bob", "too many alerts")
    conn.close()


@pytest.mark.clock
def test_the_current_pair_is_compared_whatever_the_others(clean_db):
    seed(clean_db)
    engine = create_engine(queries.sqlalchemy_url(queries.report_database_url()))
    try:
        daily = shadow.daily_comparison(engine, clock.yesterday())
        models = shadow.current_models(engine)
        events = model_health.model_events(engine, clock.today())
    finally:
        engine.dispose()
    # Two pairs share the day; the old challenger has more payments and sorts first.
    assert sorted(daily["challenger_version"]) == [OLD_CHALLENGER, CHALLENGER]
    assert shadow.totals(daily).iloc[0]["challenger_version"] == OLD_CHALLENGER
    assert (models.champion, models.challenger, models.served) == (CHAMPION, CHALLENGER, CHAMPION)
    pair = shadow.current_pair(daily, models)
    assert pair is not None
    assert (pair["champion_version"], pair["challenger_version"], pair["shadowed"]) == (
        CHAMPION,
        CHALLENGER,
        40,
    )
    assert events["reason"].tolist() == ["too many alerts", "passed the gate: X"]


@pytest.mark.clock
@pytest.mark.usefixtures("report_env")
def test_the_page_names_both_models_in_every_table_and_shows_the_history(clean_db):
    seed(clean_db)
    app = AppTest.from_file(PAGE, default_timeout=60)
    app.run()
    assert not app.exception, app.exception
    captions = [c.value for c in app.caption]
    assert any(c.startswith(f"Served model: {CHAMPION} (last payment stored") for c in captions)
    assert any(
        c.startswith(f"Champion {CHAMPION} against challenger {CHALLENGER}, on the same 40 ")
        for c in captions
    )
    shown = {m.label: m.value for m in app.metric}
    assert shown["Shadow-scored"] == "40"
    tables = [frame.value for frame in app.dataframe]
    daily = next(t for t in tables if "challenger_version" in t.columns)
    assert {"champion_version", "challenger_version"} <= set(daily.columns)
    assert set(daily["champion_version"]) == {CHAMPION}
    assert [h.value for h in app.header][-1] == "Model life cycle"
    history = next(t for t in tables if "event" in t.columns)
    assert history[["event", "actor", "reason"]].values.tolist() == [
        ["rolled_back", "bob", "too many alerts"],
        ["promoted", "fraud_retrain", "passed the gate: X"],
    ]
