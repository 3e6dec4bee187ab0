"""`fraud-pipeline retrain` refuses clearly, before any training, what it cannot do."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from fraud_pipeline import clock
from fraud_pipeline.cli import main
from fraud_pipeline.config import get_settings
from fraud_pipeline.registry import versions
from fraud_pipeline.registry.versions import set_up_database
from fraud_pipeline.storage.upsert import upsert_scored
from tests.support.factories import public_sample, scored_payments

NOW = "2026-11-23T03:00:00+01:00"


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("MODEL_STORE", str(tmp_path / "store"))
    get_settings.cache_clear()
    yield tmp_path / "store"
    get_settings.cache_clear()


def test_retrain_without_a_champion_or_recent_payments_says_why(clean_db, conn, store, capsys):
    with clock.frozen(NOW):
        assert main(["retrain"]) == 1
        assert "no champion to compare a challenger with" in capsys.readouterr().err
        set_up_database(clean_db)  # the committed model: the first champion
        # Payments older than the window only: nothing to learn from nor to measure on.
        old = clock.now() - timedelta(days=40)
        upsert_scored(conn, scored_payments(50, start=old, step_s=600))
        assert main(["retrain", "--window-days", "14"]) == 1
        error = capsys.readouterr().err
        assert "0 labelled payments to learn from and 0 to measure on" in error
        assert "nothing to retrain on" in error
        assert "payments_scored holds 50 payments from" in error  # what is really missing
        assert main(["retrain", "--window-days", "7"]) == 1  # RETRAIN_HOLDOUT_DAYS is 7
        assert "leaves nothing to train on" in capsys.readouterr().err
    assert not store.exists()  # nothing trained, nothing registered


@pytest.mark.slow
def test_retrain_registers_a_challenger_trained_on_the_window_before_its_holdout(
    clean_db, conn, store, monkeypatch, capsys
):
    for name, value in {
        "RETRAIN_WINDOW_DAYS": "10",
        "RETRAIN_HOLDOUT_DAYS": "3",
        "RETRAIN_SAMPLE_ROWS": "20000",
        "RETRAIN_MIN_EVAL_FRAUDS": "1",
        "RETRAIN_MIN_PR_AUC_GAIN": "1.0",  # no model passes: nothing is rolled out
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    set_up_database(clean_db)
    with clock.frozen(NOW) as now:
        rows = public_sample().sample(1_500, random_state=7)
        start = now - timedelta(days=10)
        payments = scored_payments(1_500, start=start, step_s=570, rows=rows)
        upsert_scored(conn, payments)
        # Verdicts on both sides of the holdout's start: 2 learnt from, 3 only measured on.
        reviews = [
            (payments.trans_num[0], "confirmed_fraud"),
            (payments.trans_num[1], "false_alarm"),
        ]
        reviews += [(t, "false_alarm") for t in payments.trans_num[-3:]]
        with conn, conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO alert_reviews (trans_num, verdict, analyst) VALUES (%s, %s, 'ana')",
                reviews,
            )
        assert main(["retrain"]) == 0
    out = capsys.readouterr().out
    (challenger,) = [v for v in versions.list_versions(conn) if v.status == "challenger"]
    assert f"{challenger.version} (against " in out and "): challenger" in out
    assert challenger.reason in out
    metadata = json.loads((store / challenger.version / "metadata.json").read_text())
    recent = metadata["training_data"]["recent"]
    with conn.cursor() as cur:  # the labelled payments before the holdout, all of them
        cur.execute(
            "SELECT count(*), count(*) FILTER (WHERE is_fraud = 1) FROM payments_scored"
            " WHERE trans_time >= %s AND trans_time < %s",
            (start, now - timedelta(days=3)),
        )
        learnt, frauds = cur.fetchone()
    # Those on cards the training files measure (validation customers) are left out.
    assert recent["rows"] + recent["left_out_measured_cards"] == learnt > 1_000
    assert 0 < recent["frauds"] <= frauds and recent["rows"] > 0
    window = challenger.metrics["evaluation_window"]
    assert window["trained_on_payments"] == learnt
    assert window["measured_payments"] == 1_500 - learnt
    # The record says how many verdicts each side had; the gate's figures on the 3 measured.
    assert window["trained_on_verdicts"] == {"confirmed_fraud": 1, "false_alarm": 1}
    assert window["measured_verdicts"] == {"confirmed_fraud": 0, "false_alarm": 3}
    for evaluation in challenger.metrics["evaluations"].values():
        assert evaluation["verdicts"]["n"] == 3 and evaluation["verdicts"]["n_fraud"] == 0
    assert "3 of them labelled by analysts' verdicts" in challenger.reason
