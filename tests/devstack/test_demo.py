"""The report demo's data: held-out Sparkov weeks moved onto the report's days, ages kept."""

from __future__ import annotations

from datetime import date, datetime

import pandas as pd

from fraud_devstack.stack.demo import sparkov_days
from fraud_pipeline.config import get_settings
from fraud_pipeline.ingest.payments import read_sparkov_csv
from fraud_pipeline.model.train import GENERATED_FILE


def test_held_out_days_land_on_the_report_day_with_their_weekday_and_ages():
    tz = get_settings().tz
    day = date(2026, 11, 21)
    start, end = datetime(2026, 11, 21, tzinfo=tz), datetime(2026, 11, 22, tzinfo=tz)
    raw = sparkov_days(start, end, day)
    times = pd.to_datetime(raw["trans_date_trans_time"])
    assert 1_000 < len(raw) < 5_000 and raw["trans_num"].is_unique
    assert times.min() >= pd.Timestamp(day) and times.max() < pd.Timestamp(end.date())
    # Moved by whole weeks from December 2019 (never trained on): weekday and ages are kept.
    source = read_sparkov_csv(GENERATED_FILE).set_index("trans_num").loc[raw["trans_num"]]
    moved = times.to_numpy() - pd.to_datetime(source["trans_date_trans_time"]).to_numpy()
    assert len(set(moved)) == 1 and pd.Timedelta(moved[0]).days % 7 == 0
    assert (pd.to_datetime(source["trans_date_trans_time"]) >= pd.Timestamp("2019-12-01")).all()
    aged = pd.to_datetime(raw["dob"]).to_numpy() - pd.to_datetime(source["dob"]).to_numpy()
    assert set(aged) == set(moved)
    assert 0 < raw["is_fraud"].astype(int).sum() < 0.05 * len(raw)
