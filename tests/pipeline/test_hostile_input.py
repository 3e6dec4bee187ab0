"""Hostile payments: whatever the payments API sends, a row is stored or quarantined, and one bad
row never blocks its interval (NUL bytes and lone surrogates cannot be stored in PostgreSQL)."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fraud_pipeline import payments_api
from fraud_pipeline.db import connect
from fraud_pipeline.extract import decode_json, tokenise_records
from fraud_pipeline.net import free_port
from fraud_pipeline.pipeline import _json_safe, extract, validate
from fraud_pipeline.schema import CATEGORIES, SPARKOV_COLUMNS
from fraud_pipeline.validate import MAX_AMOUNT
from fraud_pipeline.validate import validate as check
from tests.factories import real_rows
from tests.pipeline.conftest import serve

FIELDS = [c for c in SPARKOV_COLUMNS if c not in ("trans_date_trans_time", "unix_time")]
TEXT_FIELDS = ("merchant", "first", "last", "street", "city", "state", "zip", "job", "category")

hostile_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),  # includes NUL and lone surrogates
    st.text(min_size=190, max_size=260),
    st.sampled_from(["", " ", "nan", "1e400", "-0.0", "<script>", "'; DROP TABLE x; --"]),
)


def _api_json(records: list[dict]) -> str:
    """What the API sends: JSON text; lone surrogates and NUL travel as \\u escapes."""
    return json.dumps({"payments": records, "next_page_token": None})


def _land_and_check(records: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """extract's path (decode, tokenise, landing JSON) then validate, without the database."""
    page = decode_json(_api_json(records))
    raw = pd.DataFrame.from_records(page["payments"])
    landed = [
        json.loads(json.dumps(_json_safe(r), allow_nan=False))
        for r in tokenise_records(raw).to_dict(orient="records")
    ]
    result = check(pd.DataFrame.from_records(landed))
    return result.good, result.bad


def _storable(value: object) -> bool:
    if not isinstance(value, str):
        return True
    return "\x00" not in value and all(not 0xD800 <= ord(c) <= 0xDFFF for c in value)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(changes=st.lists(st.tuples(st.sampled_from(FIELDS), hostile_values), min_size=1, max_size=4))
def test_any_hostile_field_is_stored_or_quarantined_never_raises(changes):
    records = json.loads(real_rows().head(3).to_json(orient="records"))
    for field, value in changes:
        records[0][field] = value
    records[0]["trans_num"] = (
        records[0]["trans_num"] if records[0]["trans_num"] != records[1]["trans_num"] else "other"
    )
    good, bad = _land_and_check(records)
    assert len(good) + len(bad) == len(records)  # nothing silently dropped
    assert set(good["trans_num"]) >= {records[1]["trans_num"], records[2]["trans_num"]}
    assert bad["reason"].str.len().gt(0).all()
    for row in good.to_dict(orient="records"):
        assert 0 < row["amt"] <= MAX_AMOUNT and math.isfinite(row["amt"])
        assert row["category"] in CATEGORIES
        assert -90 <= row["lat"] <= 90 and -180 <= row["long"] <= 180
        assert len(row["card_token"]) == 64 and row["card_last4"].isdigit()
        assert all(_storable(row[f]) for f in TEXT_FIELDS if f in row)
    original = str(real_rows().iloc[0]["cc_num"])
    assert "cc_num" not in bad.columns and original not in bad.astype(str).to_string()


@pytest.mark.parametrize("bad_text", ["Shop\x00Y", "Shop\ud800Y", "\udfff"])
def test_unstorable_text_is_quarantined_not_a_crash(bad_text):
    records = json.loads(real_rows().head(2).to_json(orient="records"))
    records[0]["merchant"] = bad_text
    good, bad = _land_and_check(records)
    assert list(good["trans_num"]) == [records[1]["trans_num"]]
    assert list(bad["trans_num"]) == [records[0]["trans_num"]]
    assert "unstorable" in bad["reason"].iloc[0]


def test_a_nul_byte_from_the_real_api_does_not_block_its_interval(clean_db):
    """Real HTTP and PostgreSQL: the interval lands, the bad row is quarantined, the rest go on."""
    rows = real_rows().head(4).copy()
    start = pd.Timestamp("2026-03-01 12:00", tz="UTC")
    rows["trans_date_trans_time"] = [
        (start + pd.Timedelta(seconds=10 * i)).tz_convert("Europe/Paris").strftime("%Y-%m-%d %X")
        for i in range(len(rows))
    ]
    rows.loc[rows.index[1], "merchant"] = "fraud_Evil\x00Corp"

    def source(lo: pd.Timestamp, hi: pd.Timestamp) -> pd.DataFrame:
        return rows

    api = payments_api.build_server(source, port=free_port())
    serve(api)
    conn = connect()
    try:
        from fraud_pipeline.config import get_settings

        settings = get_settings().model_copy(
            update={"payments_api_url": f"http://127.0.0.1:{api.server_port}"}
        )
        end = start + pd.Timedelta(minutes=1)
        landed = extract(conn, "hostile", start.to_pydatetime(), end.to_pydatetime(), settings)
        assert landed["landed"] == len(rows)
        result = validate(conn, "hostile")
        assert (result["good"], result["quarantined"]) == (3, 1)
        with conn.cursor() as cur:
            cur.execute("SELECT trans_num, reason FROM payments_quarantine")
            quarantined = cur.fetchall()
        assert quarantined == [(rows.iloc[1]["trans_num"], "merchant has unstorable characters")]
    finally:
        conn.close()
        api.shutdown()
        api.server_close()
