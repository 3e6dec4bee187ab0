"""`fraud-pipeline retrain` refuses clearly, before any training, what it cannot do."""

from __future__ import annotations

from datetime import timedelta

import pytest

from fraud_pipeline import clock
from fraud_pipeline.cli import main
from fraud_pipeline.config import get_settings
from fraud_pipeline.storage.migrate import migrate
from fraud_pipeline.storage.upsert import upsert_scored
from tests.support.factories import scored_payments

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
        migrate(clean_db)  # the committed model: the first champion
        # Payments older than the window only: nothing to learn from nor to measure on.
        old = clock.now() - timedelta(days=40)
        upsert_scored(conn, scored_payments(50, start=old, step_s=600))
        assert main(["retrain", "--window-days", "14"]) == 1
        error = capsys.readouterr().err
        assert "0 labelled payments to learn from and 0 to measure on" in error
        assert "nothing to retrain on" in error
        assert main(["retrain", "--window-days", "7"]) == 1  # RETRAIN_HOLDOUT_DAYS is 7
        assert "leaves nothing to train on" in capsys.readouterr().err
    assert not store.exists()  # nothing trained, nothing registered
