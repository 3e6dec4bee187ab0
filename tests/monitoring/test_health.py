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
from fraud_pipeline.monitoring.health import compute
from fraud_pipeline.monitoring.reference import load_reference
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
