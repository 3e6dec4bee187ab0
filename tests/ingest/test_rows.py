"""Per-row reading of the API's payments: one row's content never decides for another row."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from fraud_pipeline.ingest import rows
from fraud_pipeline.ingest.cards import mask_card_numbers, mask_value
from fraud_pipeline.ingest.extract import to_records
from fraud_pipeline.ingest.validate import validate as check
from fraud_pipeline.pipeline.steps import _json_safe
from tests.support.cards import leaks, luhn_number
from tests.support.factories import real_rows

CARD = luhn_number("4539")
NOW = pd.Timestamp("2026-12-01", tz="UTC")


def _land_and_check(items: list) -> tuple[pd.DataFrame, pd.DataFrame]:
    raw = pd.DataFrame.from_records(rows.from_api(items))
    landed = [
        json.loads(json.dumps(_json_safe(r), allow_nan=False))
        for r in to_records(raw).to_dict(orient="records")
    ]
    result = check(pd.DataFrame.from_records(landed), now=NOW, tz="Europe/Paris")
    return result.good, result.bad


def _records(n: int) -> list[dict]:
    return json.loads(real_rows().head(n).to_json(orient="records"))


def test_masking_keeps_last_four_of_every_long_digit_run_luhn_or_not():
    grouped = " ".join(CARD[i : i + 4] for i in range(0, 16, 4))
    text = f"a {CARD} b {grouped} c 1234567890123 d 12345678901 e"
    masked = mask_card_numbers(text)
    assert not leaks([CARD], masked)
    assert masked.count("*" * 12 + CARD[-4:]) == 2
    assert "*" * 9 + "0123" in masked  # not Luhn-valid, masked all the same
    assert "12345678901" in masked  # 11 digits: kept
    assert mask_value({CARD: [int(CARD), float(CARD)]}) == {
        "*" * 12 + CARD[-4:]: ["*" * 12 + CARD[-4:], "*" * 13 + CARD[-3:] + "0"]
    }


TIMES = {  # as the API may send them -> the instant (UTC)
    "2026-03-10 00:00": "2026-03-09T23:00:00Z",
    "2026-03-10 00:00:07": "2026-03-09T23:00:07Z",
    "2026-03-10T04:00:01+05:00": "2026-03-09T23:00:01Z",
    "2026-03-10T04:00:02Z": "2026-03-10T04:00:02Z",
    "2026-03-10T04:00:03.250+00:00": "2026-03-10T04:00:03.250Z",
    1773100801: "2026-03-10T00:00:01Z",
    1773100802000: "2026-03-10T00:00:02Z",
    "1773100803": "2026-03-10T00:00:03Z",
}


@pytest.mark.parametrize("rotation", range(len(TIMES)))
def test_mixed_time_formats_in_any_order_each_instant_right(rotation):
    sent = list(TIMES)
    sent = sent[rotation:] + sent[:rotation]
    records = _records(len(sent))
    for record, value in zip(records, sent, strict=True):
        record["trans_date_trans_time"] = value
    good, bad = _land_and_check(records)
    assert bad.empty, bad["reason"].tolist()
    by_num = dict(zip(good["trans_num"], good["trans_time"], strict=True))
    for record, value in zip(records, sent, strict=True):
        assert by_num[record["trans_num"]] == pd.Timestamp(TIMES[value]), value


def test_an_unreadable_time_quarantines_its_row_alone_with_the_true_reason():
    records = _records(4)
    records[0]["trans_date_trans_time"] = "10/03/2026 nonsense"
    records[1]["trans_date_trans_time"] = "2026-03-10 00:00"
    good, bad = _land_and_check(records)
    assert len(good) == 3
    assert list(bad["trans_num"]) == [records[0]["trans_num"]]
    assert bad["reason"].iloc[0].startswith("trans_time unreadable")


def test_wrong_types_non_objects_and_booleans_are_quarantined_per_row():
    records = _records(6)
    records[0]["street"] = ["a", ["b"]]
    records[1]["amt"] = True
    records[2]["city"] = {"x": 1}
    records[3]["lat"] = [1]
    good, bad = _land_and_check([*records, 42, None, "x"])
    assert set(good["trans_num"]) == {records[4]["trans_num"], records[5]["trans_num"]}
    reasons = sorted(bad["reason"])
    assert reasons == sorted(
        [
            "street: expected text, got list",
            "amt: expected a number, got bool",
            "city: expected text, got object",
            "lat: expected a number, got list",
            "payment is not an object: int",
            "payment is not an object: null",
            "payment is not an object: str",
        ]
    )


def test_unknown_fields_are_dropped_names_logged_values_never_kept(caplog):
    records = _records(61)
    records[7]["card_number"] = CARD
    records[8]["merchant"] = f"shop {CARD}"
    good, bad = _land_and_check(records)
    assert len(good) == 61 and bad.empty
    assert "card_number" not in good.columns
    assert "card_number" in caplog.text
    assert not leaks([CARD], caplog.text + good.to_string() + good.to_json())


@pytest.mark.parametrize(
    ("field", "value"),
    [("street", ["a"]), ("city", None), ("zip", 75001), ("amt", True), ("lat", [1]), ("amt", "3")],
)
def test_the_column_fast_paths_agree_with_the_per_row_reading(field, value):
    """`fields_typed` and `texts` skip per-value work only where the per-row functions would
    find nothing: one odd value in a column sends the whole column back to them."""
    records = _records(5)
    clean = pd.DataFrame.from_records(records)
    assert rows.fields_typed(clean)
    assert all(not rows.field_problems(r) for r in clean.to_dict(orient="records"))
    records[2][field] = value
    odd = pd.DataFrame.from_records(records)
    found = any(rows.field_problems(r) for r in odd.to_dict(orient="records"))
    assert not rows.fields_typed(odd) or not found
    if value is True or isinstance(value, list) or value is None:
        assert not rows.fields_typed(odd)
    records[1]["merchant"] = f"shop {CARD}"
    column = pd.DataFrame.from_records(records)["merchant"]
    assert rows.texts(column).tolist() == [rows.as_text(v) for v in column]
    assert not leaks([CARD], str(rows.texts(column).tolist()))
    mixed = pd.Series([CARD, 42, None, 4.0, ["x"]], dtype=object)
    assert rows.texts(mixed).tolist() == [rows.as_text(v) for v in mixed]
