"""`train --with-reviews`: the analysts' verdicts become labelled examples of the train part only.

Real PostgreSQL (the session database), real training on a sample of the files (SAMPLE_ROWS,
about 25 s a run). xgboost.train is wrapped, not replaced, to read the matrix it was given.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import psycopg2.extensions
import pytest

from fraud_pipeline import cli
from fraud_pipeline.config import get_settings
from fraud_pipeline.ingest.cards import card_token
from fraud_pipeline.model.features import feature_frame
from fraud_pipeline.model.split import card_groups
from fraud_pipeline.model.train import GENERATED_FILE, REVIEW_WEIGHT, labelled, main, train
from fraud_pipeline.net import free_port
from fraud_pipeline.storage.upsert import upsert_scored
from tests.support.cards import luhn_number
from tests.support.database import truncate_app_tables
from tests.support.factories import scored_payments

SAMPLE_ROWS = 20_000
CARDS = 3  # fictitious cards, four payments each: the last one of each card is reviewed


@pytest.fixture(scope="module")
def measured_card() -> str:
    """A validation customer's card of the sampled file: its rows are measured, never trained on."""
    raw, payments = labelled(GENERATED_FILE, sample_rows=SAMPLE_ROWS)
    groups = card_groups(raw)
    number = groups.index[groups == "validation"][0]
    return str(payments.loc[raw["cc_num"] == number, "card_token"].iloc[0])


def _seed(conn: psycopg2.extensions.connection, measured_card: str) -> pd.DataFrame:
    """Twelve payments on CARDS new cards and one on a measured card; verdicts on the last of
    each card: confirmed fraud, false alarm, and a confirmed fraud superseded by a false alarm,
    each stored with the opposite `is_fraud`, so only the verdict can give the label used."""
    key = get_settings().card_token_key.get_secret_value().encode()
    start = datetime(2026, 3, 2, 9, tzinfo=get_settings().tz)
    payments = scored_payments(4 * CARDS + 1, start=start, step_s=5 * 3600.0)
    for i in range(4 * CARDS):
        number = luhn_number(f"49990{i % CARDS}")
        payments.loc[i, ["card_token", "card_last4"]] = [card_token(number, key), number[-4:]]
    payments.loc[4 * CARDS, "card_token"] = measured_card
    targets = payments.iloc[3 * CARDS :].copy()  # the last payment of each card, then the other
    payments.loc[targets.index, "is_fraud"] = [0, 1, 1, 0]
    upsert_scored(conn, payments)
    reviews = [
        (targets.trans_num.iloc[0], "confirmed_fraud", "2026-03-05T10:00:00Z"),
        (targets.trans_num.iloc[1], "false_alarm", "2026-03-05T10:01:00Z"),
        (targets.trans_num.iloc[2], "confirmed_fraud", "2026-03-05T10:02:00Z"),
        (targets.trans_num.iloc[2], "false_alarm", "2026-03-06T08:00:00Z"),  # supersedes it
        (targets.trans_num.iloc[3], "confirmed_fraud", "2026-03-05T10:03:00Z"),  # measured card
    ]
    with conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO alert_reviews (trans_num, verdict, analyst, reviewed_at)"
            " VALUES (%s, %s, 'analyst@example.org', %s)",
            reviews,
        )
    return payments


@pytest.fixture
def training_matrix(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """What xgboost.train receives (the real function still trains)."""
    import xgboost

    seen: dict[str, Any] = {}
    real = xgboost.train

    def recording(params: Any, dtrain: Any, *args: Any, **kwargs: Any) -> Any:
        seen["dtrain"] = dtrain
        return real(params, dtrain, *args, **kwargs)

    monkeypatch.setattr(xgboost, "train", recording)
    return seen


def test_verdicts_are_the_labels_of_reviewed_payments_in_the_train_part(
    conn, measured_card, training_matrix, tmp_path
):
    payments = _seed(conn, measured_card)
    out = tmp_path / "artifacts"
    train(out, sample_rows=SAMPLE_ROWS, with_reviews=True)

    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["reviewed_examples"] == {"confirmed_fraud": 1, "false_alarm": 2}
    reviews = metadata["training_data"]["reviews"]
    targets = payments.iloc[3 * CARDS : 4 * CARDS]
    assert reviews["left_out_measured_cards"] == 1
    assert reviews["trans_time_range"] == [
        targets.trans_time.min().tz_convert("UTC").isoformat(),
        targets.trans_time.max().tz_convert("UTC").isoformat(),
    ]
    assert reviews["reviewed_at_range"] == [
        "2026-03-05T10:00:00+00:00",
        "2026-03-06T08:00:00+00:00",
    ]

    # The reviewed rows close the training matrix, in time order, labelled by the verdict in
    # force (the superseded one by its latest), weighted like the real rows.
    dtrain = training_matrix["dtrain"]
    assert metadata["training_data"]["rows_train"] == dtrain.num_row()
    np.testing.assert_array_equal(dtrain.get_label()[-CARDS:], [1, 0, 0])
    np.testing.assert_array_equal(dtrain.get_weight()[-CARDS:], [REVIEW_WEIGHT] * CARDS)

    # Their features are the online ones: the row plus the card's stored history (the card's
    # three earlier payments), through the same feature definition as the files' rows.
    expected = feature_frame(targets, payments.iloc[: 3 * CARDS])
    assert (expected["card_count_30d"] == 3).all()
    preprocess = joblib.load(out / "preprocess.joblib")
    matrix = np.asarray(preprocess.transform(expected), dtype=np.float32)
    used = dtrain.get_data().toarray()[-CARDS:]
    np.testing.assert_allclose(used, np.nan_to_num(matrix), rtol=1e-6)


def test_without_the_flag_reviews_change_nothing(conn, clean_db, measured_card, tmp_path, capsys):
    _seed(conn, measured_card)
    plain = train(tmp_path / "plain", sample_rows=SAMPLE_ROWS)
    assert "reviewed_examples" not in plain
    assert "reviews" not in plain["training_data"]

    # With the flag and no review at all: said so, and the very same model.
    truncate_app_tables(clean_db)
    assert main(out=tmp_path / "none", sample_rows=SAMPLE_ROWS, with_reviews=True) == 0
    assert "no reviewed payment to add" in capsys.readouterr().out
    none = json.loads((tmp_path / "none" / "metadata.json").read_text())
    assert none["reviewed_examples"] == {"confirmed_fraud": 0, "false_alarm": 0}
    assert none["sha256"] == plain["sha256"]  # byte-identical model files
    assert none["model_version"] == plain["model_version"]
    assert none["metrics"] == plain["metrics"]


@pytest.fixture
def unreachable_database(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/fraud_db"
    monkeypatch.setenv("DATABASE_URL", url)
    get_settings.cache_clear()
    try:
        yield url
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


def test_an_unreachable_database_is_a_clear_error_before_any_training(
    unreachable_database, tmp_path: Path, capsys
):
    out = tmp_path / "artifacts"
    assert cli.main(["train", "--with-reviews", "--out", str(out)]) == 1
    error = capsys.readouterr().err
    assert "ERROR: train: --with-reviews: cannot reach PostgreSQL at" in error
    assert unreachable_database.rsplit(":", 1)[1].split("/")[0] in error  # the port tried
    assert "without --with-reviews" in error
    assert not out.exists()
