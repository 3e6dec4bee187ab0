"""The day's figures from PostgreSQL: alert volume against its 30-day median, quarantine share,
confirmed precision of the reviewed alerts (v_alert_verdicts); each compared with SQL-free
expectations computed here from the seeded rows."""

from __future__ import annotations

import json
import statistics
from datetime import date, timedelta

import pytest

from fraud_pipeline import clock
from fraud_pipeline.config import get_settings
from fraud_pipeline.model.features import HISTORY_NUMERIC
from fraud_pipeline.model.reference import load_reference
from fraud_pipeline.monitoring.health import compute
from fraud_pipeline.storage import watermark
from fraud_pipeline.storage.upsert import upsert_scored
from tests.support.factories import scored_payments

DAY = date(2026, 11, 20)


def test_alert_volume_quarantine_and_confirmed_precision(conn):
    volumes = []
    for back in range(1, 6):  # five earlier days, about half flagged (uniform scores)
        earlier = scored_payments(
            200, start=clock.day_start(DAY - timedelta(days=back)), seed=10 + back, step_s=60
        )
        volumes.append(int(earlier["is_fraud_pred"].sum()))
        upsert_scored(conn, earlier)
    day = scored_payments(400, start=clock.day_start(DAY) + timedelta(hours=1), seed=20, step_s=60)
    day["fraud_probability"], day["is_fraud_pred"] = 0.9, True  # every payment alerted
    upsert_scored(conn, day)
    reviewed = day["trans_num"].head(60).tolist()
    with conn, conn.cursor() as cur:
        for i, trans_num in enumerate(reviewed):  # 20 confirmed, 40 false alarms
            verdicts = ["confirmed_fraud"] if i < 20 else ["confirmed_fraud", "false_alarm"]
            for verdict in verdicts:  # a later verdict supersedes the first one
                cur.execute(
                    "INSERT INTO alert_reviews (trans_num, verdict, analyst) VALUES (%s, %s, 'a')",
                    (trans_num, verdict),
                )
        for i in range(5):
            cur.execute(
                "INSERT INTO payments_quarantine (reason, payload, payload_hash, run_id, "
                "received_at) VALUES ('bad', %s, %s, 'r', %s)",
                (json.dumps({"i": i}), f"h{i}", clock.day_start(DAY) + timedelta(hours=2)),
            )
    settings = get_settings()
    figures = {f.metric: f for f in compute(conn, DAY, load_reference(settings.artifacts_dir))}

    volume = figures["alert_volume"]
    assert volume.value == 400.0
    assert volume.threshold == pytest.approx(3 * statistics.median(volumes))
    assert volume.breached
    assert figures["flag_share"].value == 1.0 and figures["flag_share"].breached
    quarantine = figures["quarantine_share"]
    assert quarantine.value == pytest.approx(5 / 405) and quarantine.breached
    precision = figures["confirmed_precision"]
    assert precision.value == pytest.approx(20 / 60) and precision.breached
    assert figures["review_count"].value == 60.0


def test_precision_is_not_judged_on_too_few_reviews(conn):
    day = scored_payments(10, start=clock.day_start(DAY) + timedelta(hours=1), seed=21)
    upsert_scored(conn, day)
    with conn, conn.cursor() as cur:
        for trans_num in day["trans_num"]:
            cur.execute(
                "INSERT INTO alert_reviews (trans_num, verdict, analyst) "
                "VALUES (%s, 'false_alarm', 'a')",
                (trans_num,),
            )
    figures = {
        f.metric: f for f in compute(conn, DAY, load_reference(get_settings().artifacts_dir))
    }
    assert figures["confirmed_precision"].value == 0.0
    assert not figures["confirmed_precision"].breached  # 10 reviews < 50
    assert figures["alert_volume"].threshold is None  # no earlier day to compare with


@pytest.mark.parametrize(("loaded_days", "judged"), [(7, False), (30, True)])
def test_history_drift_is_not_judged_while_the_history_is_short(conn, loaded_days, judged):
    """A fresh start loads a few days: the cards' history features and the score shift because
    the database holds less than LOOKBACK, not because the world changed (make run's first day:
    score PSI 0.75 with 7 days loaded, 0.15 with 30). Row features are judged either way."""
    day = scored_payments(400, start=clock.day_start(DAY) + timedelta(hours=1), seed=22)
    day["fraud_probability"], day["is_fraud_pred"] = 0.99, True  # every score far off
    day["amt"] = day["amt"] * 50  # and every amount
    upsert_scored(conn, day)
    with conn, conn.cursor() as cur:
        watermark.advance(
            cur,
            clock.day_start(DAY - timedelta(days=loaded_days)),
            clock.day_start(DAY + timedelta(days=1)),
        )
    reference = load_reference(get_settings().artifacts_dir)
    figures = {f.metric: f for f in compute(conn, DAY, reference)}
    history = [n for n in reference["features"] if n in HISTORY_NUMERIC]
    assert history, reference["features"]  # the top features include card-history ones
    for metric in ["psi_score", *(f"psi_{n}" for n in history)]:
        assert figures[metric].value is not None, metric
        assert (figures[metric].threshold is not None) is judged, metric
    assert figures["psi_score"].breached is judged  # a real shift, judged once history is full
    assert figures["psi_amt"].threshold == get_settings().monitor_psi_max
    assert figures["psi_amt"].breached
