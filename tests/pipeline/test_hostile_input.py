"""Hostile payments: whatever the payments API sends, a row is stored or quarantined, and one bad
row never blocks its interval (NUL bytes and lone surrogates cannot be stored in PostgreSQL)."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fraud_devstack.stack import payments_api
from fraud_pipeline.config import get_settings
from fraud_pipeline.ingest.extract import decode_json, to_records
from fraud_pipeline.ingest.validate import MAX_AMOUNT
from fraud_pipeline.ingest.validate import validate as check
from fraud_pipeline.net import free_port
from fraud_pipeline.pipeline.steps import _json_safe, extract, validate
from fraud_pipeline.schema import CATEGORIES, SPARKOV_COLUMNS
from fraud_pipeline.storage.db import connect
from tests.support.factories import real_rows
from tests.support.servers import serve, serve_app

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
        for r in to_records(raw).to_dict(orient="records")
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
        (start + pd.Timedelta(seconds=10 * i))
        .tz_convert(get_settings().business_tz)
        .strftime("%Y-%m-%d %X")
        for i in range(len(rows))
    ]
    rows.loc[rows.index[1], "merchant"] = "fraud_Evil\x00Corp"

    def source(lo: pd.Timestamp, hi: pd.Timestamp) -> pd.DataFrame:
        return rows

    api = serve_app(payments_api.build_app(source))
    conn = connect()
    try:
        settings = get_settings().model_copy(update={"payments_api_url": api.url})
        end = start + pd.Timedelta(minutes=1)
        landed = extract(conn, "hostile", start.to_pydatetime(), end.to_pydatetime(), settings)
        assert landed.landed == len(rows)
        result = validate(conn, "hostile")
        assert (result.good, result.quarantined) == (3, 1)
        with conn.cursor() as cur:
            cur.execute("SELECT trans_num, reason FROM payments_quarantine")
            quarantined = cur.fetchall()
        assert quarantined == [(rows.iloc[1]["trans_num"], "merchant has unstorable characters")]
    finally:
        conn.close()
        api.stop()


# -- through the real API, the whole pipeline and PostgreSQL ------------------------------------
START = pd.Timestamp("2026-03-01 12:00", tz="UTC")


def _timed(rows: pd.DataFrame, start: pd.Timestamp = START) -> pd.DataFrame:
    """The rows re-timed 10 s apart from `start` (the API serves them by event time)."""
    rows = rows.copy()
    rows["trans_date_trans_time"] = [
        (start + pd.Timedelta(seconds=10 * i))
        .tz_convert(get_settings().business_tz)
        .strftime("%Y-%m-%d %X")
        for i in range(len(rows))
    ]
    return rows


def _run(services, rows: pd.DataFrame, start: pd.Timestamp, run_id: str):
    """One whole run (ingest .. alert) of [start, start + 1h) against an API serving `rows`."""
    from fraud_pipeline.pipeline.steps import run_interval

    api = serve_app(payments_api.build_app(lambda lo, hi: rows))
    settings = services.settings.model_copy(update={"payments_api_url": api.url})
    conn = connect()
    try:
        end = start + pd.Timedelta(hours=1)
        return run_interval(
            conn, start.to_pydatetime(), end.to_pydatetime(), run_id=run_id, settings=settings
        )
    finally:
        conn.close()
        api.stop()


def _rows(query: str, params: tuple = ()) -> list[tuple]:
    conn = connect()
    try:
        with conn.cursor() as cur:
            cur.execute(query, params)
            return cur.fetchall()
    finally:
        conn.close()


def test_duplicate_trans_num_within_and_across_batches(services):
    rows = _timed(real_rows().head(6))
    trans = list(rows["trans_num"])
    rows.loc[rows.index[1], "trans_num"] = trans[0]  # same key, different payment: both bad
    rows.loc[rows.index[3]] = rows.loc[rows.index[2]].to_numpy()  # an exact copy: one payment
    _run(services, rows, START, "first")
    stored = {r[0] for r in _rows("SELECT trans_num FROM payments_scored")}
    assert stored == {trans[2], trans[4], trans[5]}
    quarantined = _rows("SELECT trans_num, reason FROM payments_quarantine")
    assert sorted(q[0] for q in quarantined) == [trans[0], trans[0]]
    assert all("duplicate trans_num with different contents" in q[1] for q in quarantined)

    # The next batch re-delivers stored payments, one of them altered: the stored one stands.
    again = _timed(real_rows().iloc[[2, 4, 6]], START + pd.Timedelta(hours=1))
    again.loc[again.index[1], "amt"] = 9_999.0
    amount = _rows("SELECT amt FROM payments_scored WHERE trans_num = %s", (trans[4],))
    _run(services, again, START + pd.Timedelta(hours=1), "second")
    stored_rows = _rows("SELECT trans_num FROM payments_scored")
    assert len(stored_rows) == len({r[0] for r in stored_rows}) == 4  # the new one, no copy
    assert _rows("SELECT amt FROM payments_scored WHERE trans_num = %s", (trans[4],)) == amount


INJECTIONS = [
    "Robert'); DROP TABLE payments_scored; --",
    "x' OR '1'='1",
    "'; INSERT INTO canary VALUES ('executed'); --",
    '"; DELETE FROM payments_inbox; --',
    "$$; TRUNCATE payments_scored; $$",
    "<script>alert('xss')</script>",
]


def test_sql_injection_strings_are_stored_as_text_never_executed(services):
    """Hostile text in every text field goes through the whole pipeline verbatim, as data."""
    conn = connect()
    with conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS canary (note text)")
    conn.close()
    fraud = real_rows()[real_rows()["is_fraud"] == 1].head(len(INJECTIONS) + 1)
    rows = _timed(fraud)
    for i, text in enumerate(INJECTIONS):
        for column in ("merchant", "first", "last", "city", "job"):
            rows.loc[rows.index[i], column] = text
    rows.loc[rows.index[-1], "trans_num"] = INJECTIONS[0]  # an invalid key: quarantined as text
    try:
        summary = _run(services, rows, START, "injected")
        assert summary.loaded.loaded == len(INJECTIONS)
        stored = dict(_rows("SELECT merchant, is_fraud_pred FROM payments_scored"))
        assert sorted(stored) == sorted(INJECTIONS)  # verbatim, as data
        assert _rows("SELECT trans_num FROM payments_quarantine") == [(INJECTIONS[0],)]
        assert _rows("SELECT count(*) FROM canary") == [(0,)]  # nothing was executed
        emails = services.mail.messages()
        assert emails, "the frauds were alerted"
        html = "".join(
            part.get_content()
            for m in emails
            for part in m.walk()
            if part.get_content_type() == "text/html"
        )
        assert "<script>" not in html  # escaped in the email
        assert "&lt;script&gt;" in html or not stored[INJECTIONS[-1]]
    finally:
        conn = connect()
        with conn, conn.cursor() as cur:
            cur.execute("DROP TABLE canary")
        conn.close()


_page_server_body: list[bytes] = [b""]


@pytest.fixture(scope="module")
def page_server():
    """An HTTP server answering every request with the body the test sets."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = _page_server_body[0]
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    serve(server)
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cut=st.floats(min_value=0.0, max_value=0.999))
def test_a_truncated_page_lands_nothing_and_says_so(page_server, clean_db, cut):
    """Any page cut short (a dropped connection, a proxy's limit) fails the extract, loudly."""
    from fraud_pipeline.config import get_settings
    from fraud_pipeline.ingest.extract import ExtractError

    records = json.loads(real_rows().head(20).to_json(orient="records"))
    page = json.dumps({"payments": records, "next_page_token": None}).encode()
    _page_server_body[0] = page[: int(len(page) * cut)]
    settings = get_settings().model_copy(update={"payments_api_url": page_server})
    conn = connect()
    try:
        with pytest.raises(ExtractError, match="not JSON"):
            extract(conn, "cut", START.to_pydatetime(), START.to_pydatetime(), settings)
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM payments_landing")
            assert cur.fetchone() == (0,)
    finally:
        conn.close()
