"""The pipeline's steps: one path for every payment, the DAG's runs and the back-fills alike.

    ingest (fetch -> payments_landing -> validate -> payments_inbox; bad rows -> quarantine)
    -> score_and_load (claim -> card history, features -> endpoint -> decisions, reasons, and
       beside them the leads' rules and lists -> payments_scored, deleted from the inbox in the
       same transaction, chunk by chunk)
    -> alert, and beside it the challenger's shadow scoring (`pipeline/shadow.py`).

The inbox is the durable queue: a payment waits there until it is stored (or quarantined), so
a task that fails loses nothing and its retry, or the next run, takes it up. `score_and_load`
claims every pending inbox row, not only this run's: what earlier runs could not score
(endpoint switched off, database down) is picked up by the next run; a claim older than
STALE_CLAIM (a run that died) is taken over. A back-fill chunk (`process_interval`) is fetched
ahead in memory (`receive`), admitted to the inbox already claimed under its own batch, and
stored by the same `score_and_load`. Every step can be re-run: the same interval again stores
nothing new and sends nothing. Tasks exchange small frozen results (`pipeline/results.py`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

import numpy as np
import pandas as pd
import psycopg2
import psycopg2.extensions
import pyarrow as pa
from psycopg2 import sql
from psycopg2.extras import execute_values

from fraud_pipeline import clock
from fraud_pipeline.alerting.alerts import alert_pending
from fraud_pipeline.config import Settings, get_settings
from fraud_pipeline.ingest.cards import mask_card_numbers, mask_value
from fraud_pipeline.ingest.extract import fetch_current, fetch_window, to_records
from fraud_pipeline.ingest.validate import Validated
from fraud_pipeline.ingest.validate import validate as validate_rows
from fraud_pipeline.model.reasons import top_reasons
from fraud_pipeline.pipeline.results import BatchId, Ingested, Loaded, RunId, batch_for
from fraud_pipeline.pipeline.shadow import shadow_loaded
from fraud_pipeline.registry.models import champion_model
from fraud_pipeline.rules.engine import check, live_checks
from fraud_pipeline.schema import PAYMENT_COLUMNS
from fraud_pipeline.serving.endpoint import EndpointClient, ScoreResult, check_served_version
from fraud_pipeline.storage import late, watermark
from fraud_pipeline.storage.history import load_card_history
from fraud_pipeline.storage.upsert import copy_into, merge_scored, prepare

# What PostgreSQL or the COPY encoding raise for a value that cannot be stored.
STORAGE_ERRORS = (psycopg2.DataError, pa.ArrowException, ValueError, TypeError)

if TYPE_CHECKING:  # both import heavy libraries or settings: the tasks import them when they run
    from fraud_pipeline.ingest.validate import Validated
    from fraud_pipeline.model.artifacts import Model

log = logging.getLogger(__name__)

STALE_CLAIM = timedelta(minutes=5)  # a claim this old is taken over by the next run
RENEW_CLAIM = timedelta(minutes=1)  # a batch claiming again renews its claims this old

# Transaction-scoped advisory locks around a batch's inbox rows. Claiming takes CLAIM_LOCK
# exclusively: it may take over the rows of a batch that is being stored (a run and its zombie
# share a batch id; a stale claim is taken over). Storing a chunk takes it shared, plus its
# batch's own lock (BATCH_LOCK_CLASS, hash of the batch id): two transactions touching the same
# inbox rows take turns instead of locking them in different orders (a deadlock). Each lock is
# the first statement of its transaction, so no transaction waits for one while holding row
# locks.
CLAIM_LOCK = 0x4652434C  # "FRCL"
BATCH_LOCK_CLASS = 0x46524142  # "FRAB"

Connection: TypeAlias = psycopg2.extensions.connection


class Scorer(Protocol):
    """What scores a feature matrix: `serving.endpoint.EndpointClient` (the SageMaker endpoint)."""

    def predict(self, matrix: np.ndarray) -> ScoreResult: ...


def _json_safe(record: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in record.items():
        if isinstance(value, pd.Timestamp | datetime):
            out[key] = value.isoformat()
        elif isinstance(value, float) and np.isnan(value):
            out[key] = None
        elif isinstance(value, float) and np.isinf(value):
            out[key] = str(value)  # JSON has no inf; "inf" stays visible to validation
        elif value is pd.NA or value is pd.NaT:
            out[key] = None
        else:
            out[key] = value.item() if isinstance(value, np.generic) else value
    return out


# -- extract ----------------------------------------------------------------------------------
def extract(
    conn: Connection,
    run_id: RunId,
    start: datetime,
    end: datetime,
    settings: Settings | None = None,
    *,
    catch_up: bool = False,
) -> Extracted:
    """Fetch the interval's payments, tokenise the cards, land them (idempotent per run).

    `catch_up` (the DAG): fetch from the high-water mark when it lags behind `start` (missed
    runs), at most `dag_catchup_max_span_min` minutes. Every windowed fetch also re-reads the
    LATE_PAYMENT_LOOKBACK_MIN minutes before it (already landed ones only,
    `watermark.lookback_start`): a payment delivered after its minute was fetched is new there,
    the others are re-deliveries that validate sets aside. The mark moves with the landing.
    """
    settings = settings or get_settings()
    asked = (start, end)
    windowed = settings.payments_api_mode == "windowed"
    fetch_from, recheck = start, None
    if windowed:
        with conn, conn.cursor() as cur:
            if catch_up:
                span = timedelta(minutes=settings.dag_catchup_max_span_min)
                start, end = watermark.catch_up_window(watermark.read(cur), start, end, span)
            lookback = timedelta(minutes=settings.late_payment_lookback_min)
            fetch_from = watermark.lookback_start(cur, start, lookback)
            horizon = timedelta(minutes=settings.late_payment_recheck_min)
            recheck = watermark.recheck_window(cur, start, end, horizon, lookback)
        if (start, end) != asked:
            log.warning("run %s: catching up missed runs: fetching %s -> %s", run_id, start, end)
    fetched_at = clock.now()
    raw = fetch_window(start, end, settings) if windowed else fetch_current(settings)
    earlier = [(fetch_from, start)] if fetch_from < start else []
    earlier += [recheck] if recheck is not None else []  # an hour on (LATE_PAYMENT_RECHECK_MIN)
    reread = pd.concat([fetch_window(*w, settings) for w in earlier]) if earlier else raw[:0]
    unseen = not_stored(conn, reread)
    if len(reread):
        log.info(
            "run %s: look-back and re-check read %d payments again, %d of them new (late)",
            run_id,
            len(reread),
            len(unseen),
        )
        raw = pd.concat([unseen, raw], ignore_index=True)
    records = to_records(raw, settings) if len(raw) else raw
    rows, keys = [], set()
    for position, record in enumerate(records.to_dict(orient="records")):
        key = str(record.get("trans_num") or f"missing-{position}")[:200]
        if key in keys:  # a second payment under one key is landed too: validate judges the pair
            key = f"{key[:180]}#{position}"
        keys.add(key)
        rows.append((run_id, key, json.dumps(_json_safe(record), allow_nan=False)))
    with conn, conn.cursor() as cur:
        if rows:
            execute_values(
                cur,
                "INSERT INTO payments_landing (run_id, trans_num, payload) VALUES %s "
                "ON CONFLICT (run_id, trans_num) DO NOTHING",
                rows,
                page_size=5_000,
            )
        if catch_up and windowed:
            watermark.advance(cur, fetch_from, end)  # landed: from here on no payment is lost
    return Extracted(
        run_id=run_id,
        landed=len(rows),
        start=start,
        end=end,
        # New payments before `start` came in the look-back: late (validate records them);
        # before `beyond_before`, every earlier look-back missed them: beyond the bound.
        late_before=start,
        beyond_before=start - timedelta(minutes=settings.late_payment_lookback_min),
        fetched_at=fetched_at,
        reread=len(reread),
    )


@dataclass(frozen=True)
class Extracted:
    """What `extract` landed, and the marks `validate` records late payments by."""

    run_id: RunId
    landed: int
    start: datetime
    end: datetime
    late_before: datetime
    beyond_before: datetime
    fetched_at: datetime
    reread: int = 0


def not_stored(conn: Connection, raw: pd.DataFrame) -> pd.DataFrame:
    """The rows of `raw` whose key is neither stored, waiting in the inbox nor quarantined: what a look-back
    keeps. The others are dropped here, before tokenising, landing and validation, so that
    re-reading is one indexed query (a re-delivery with other contents is judged, and
    quarantined, when its own window is fetched again, not in a look-back)."""
    if raw.empty or "trans_num" not in raw:
        return raw[:0]
    # Only rows with a key can be told apart from what was stored: a keyless or non-object item
    # was judged (quarantined) when its own window was fetched, not again at each look-back.
    keyed = raw["trans_num"].map(lambda key: isinstance(key, str) and key != "").to_numpy()
    raw = raw[keyed]
    keys = raw["trans_num"].tolist()
    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT trans_num FROM payments_scored WHERE trans_num = ANY(%(keys)s::text[]) "
            "UNION ALL SELECT trans_num FROM payments_inbox WHERE trans_num = ANY(%(keys)s::text[]) "
            # quarantined when its own window was fetched: judged once, not at every look-back
            "UNION ALL SELECT trans_num FROM payments_quarantine "
            "WHERE trans_num = ANY(%(keys)s::text[])",
            {"keys": keys},
        )
        known = {row[0] for row in cur.fetchall()}
    return raw[~raw["trans_num"].isin(known).to_numpy()]


# -- ingest = extract + validate ----------------------------------------------------------------
def ingest(
    conn: Connection,
    run_id: RunId,
    start: datetime,
    end: datetime,
    settings: Settings | None = None,
    *,
    catch_up: bool = False,
) -> Ingested:
    """Fetch the interval (`extract`: landed, the mark moved with it) and move every landed row
    to the inbox or the quarantine (`validate`). Re-run (a retry): the interval is landed again
    under the same run (a no-op) and re-deliveries are set aside, so nothing is stored twice."""
    extracted = extract(conn, run_id, start, end, settings, catch_up=catch_up)
    validated = validate(
        conn,
        run_id,
        late_before=extracted.late_before,
        fetched_at=extracted.fetched_at,
        beyond_before=extracted.beyond_before,
    )
    return replace(
        validated,
        fetched=extracted.landed,
        reread=extracted.reread,
        start=extracted.start.isoformat(),
        end=extracted.end.isoformat(),
    )


def validate(
    conn: Connection,
    run_id: RunId,
    late_before: datetime | None = None,
    fetched_at: datetime | None = None,
    beyond_before: datetime | None = None,
) -> Ingested:
    """Landed rows -> inbox (payments not stored yet) or quarantine (with the reason): `admit`.

    A new payment with time before `late_before` (the run's own interval; extract gives it)
    that only this run landed came in its look-back: it arrived after its minute was fetched,
    and is recorded as late; before `beyond_before` (the re-check), later than the bound.
    One transaction: the landed rows are deleted as they are read, so a failure leaves them landed.
    """
    with conn, conn.cursor() as cur:
        # Every landed row, not only this run's: a run whose validate never ran left its rows.
        cur.execute("DELETE FROM payments_landing RETURNING payload, run_id, trans_num")
        landed = cur.fetchall()
        payloads = [row[0] for row in landed]
        # Landed by another run too (runs that overlap): its own interval may hold them.
        elsewhere = frozenset(key for _, other, key in landed if other != run_id)
        if not payloads:
            return Ingested(run_id)
        return admit(
            cur,
            check_rows(pd.DataFrame.from_records(payloads)),
            run_id,
            fetched=len(payloads),
            late_before=late_before,
            fetched_at=fetched_at,
            beyond_before=beyond_before,
            elsewhere=elsewhere,
        )


def admit(
    cur: psycopg2.extensions.cursor,
    checked: Validated,
    run_id: RunId,
    *,
    fetched: int,
    late_before: datetime | None = None,
    fetched_at: datetime | None = None,
    beyond_before: datetime | None = None,
    elsewhere: frozenset[str] = frozenset(),
    claim_as: BatchId | None = None,
) -> Ingested:
    """Checked rows into the inbox, inside the caller's transaction: the bad ones quarantined,
    re-deliveries set aside, the new ones late before `late_before` recorded (not those in
    `elsewhere`: landed by another run too). `claim_as`: the new rows wait claimed by that
    batch (a back-fill chunk scores them at once; the DAG's runs leave them alone).

    A row is stored alone when the batch cannot be: a row that can be neither judged
    (`check_rows`) nor stored is quarantined, so no row can make every later run fail.
    """
    quarantine(cur, checked.bad, run_id)
    cur.execute(
        "CREATE TEMP TABLE IF NOT EXISTS inbox_stage (LIKE payments_inbox INCLUDING DEFAULTS) "
        "ON COMMIT DROP"
    )
    new, seen, refused = _land_in_inbox(cur, checked.good, run_id, claim_as)
    quarantine(cur, refused, run_id)
    mine = new[~new["trans_num"].astype(str).isin(elsewhere)]
    late = record_late(cur, mine, late_before, fetched_at, run_id, beyond_before)
    return Ingested(
        run_id=run_id,
        fetched=fetched,
        good=len(checked.good) - len(refused),
        quarantined=len(checked.bad) + len(refused),
        new=len(new),
        redelivered=seen["redelivered"],
        conflicts=seen["conflicts"],
        late=late,
    )


def record_late(
    cur: psycopg2.extensions.cursor,
    new: pd.DataFrame,
    late_before: datetime | None,
    fetched_at: datetime | None,
    run_id: str,
    beyond_before: datetime | None = None,
) -> int:
    """The new payments (trans_num, trans_time) with time before `late_before`: recorded as late
    (`storage.late`), those before `beyond_before` as beyond the bound; how many. None: the run
    re-read nothing before its own interval."""
    if late_before is None or new.empty:
        return 0
    times = pd.to_datetime(new["trans_time"], utc=True)
    before = (times < pd.Timestamp(late_before)).to_numpy()
    beyond = before & (times < pd.Timestamp(beyond_before or times.min())).to_numpy()
    when, rows = fetched_at or clock.now(), new[["trans_num", "trans_time"]]
    return late.record(cur, rows[before & ~beyond], when, run_id, beyond_bound=False) + (
        late.record(cur, rows[beyond], when, run_id, beyond_bound=True)
    )


def _land_in_inbox(
    cur: psycopg2.extensions.cursor, good: pd.DataFrame, run_id: str, claim_as: BatchId | None
) -> tuple[pd.DataFrame, dict[str, int], pd.DataFrame]:
    """Set re-deliveries aside and put the rest in the inbox: the batch at once, else row by row.

    One row PostgreSQL refuses must not keep the others (nor itself) landed for good: when the
    batch cannot be stored, each row is tried alone and the ones that cannot be are returned,
    with their reason, for the quarantine. The payments new to the inbox: (trans_num, trans_time).
    """
    try:
        new, seen = _land(cur, good, run_id, claim_as)
        return new, seen, good.iloc[0:0]
    except STORAGE_ERRORS:
        pass
    news, seen, refused = [NO_NEW], {"redelivered": 0, "conflicts": 0}, []
    for position in range(len(good)):
        row = good.iloc[[position]]
        try:
            row_new, row_seen = _land(cur, row, run_id, claim_as)
        except STORAGE_ERRORS as error:
            refused.append(row.assign(reason=f"not storable: {type(error).__name__}"))
            continue
        news.append(row_new)
        seen = {key: seen[key] + row_seen[key] for key in seen}
    new = pd.concat(news, ignore_index=True)
    return new, seen, pd.concat(refused, ignore_index=True) if refused else good.iloc[0:0]


NO_NEW = pd.DataFrame({"trans_num": pd.Series(dtype=str), "trans_time": pd.Series(dtype=object)})


def _land(
    cur: psycopg2.extensions.cursor, good: pd.DataFrame, run_id: str, claim_as: BatchId | None
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Re-deliveries set aside, the fresh payments inserted into the inbox: all or none."""
    cur.execute("SAVEPOINT land")
    try:
        fresh, seen = set_aside_redeliveries(cur, good, run_id)
        new = _to_inbox(cur, fresh, claim_as) if len(fresh) else NO_NEW
    except BaseException:
        cur.execute("ROLLBACK TO SAVEPOINT land")
        raise
    cur.execute("RELEASE SAVEPOINT land")
    return new, seen


def _to_inbox(
    cur: psycopg2.extensions.cursor, good: pd.DataFrame, claim_as: BatchId | None
) -> pd.DataFrame:
    """Stage and insert validated payments not stored yet (inside `_land`'s savepoint), claimed
    by `claim_as` if given; the ones inserted (trans_num, trans_time)."""
    cur.execute("TRUNCATE inbox_stage")
    copy_into(cur, "inbox_stage", good.loc[:, list(PAYMENT_COLUMNS)])
    columns = ", ".join(f'"{c}"' for c in PAYMENT_COLUMNS)
    cur.execute(
        f"INSERT INTO payments_inbox ({columns}, batch_id, claimed_at) "  # noqa: S608
        f"SELECT {columns}, %(batch)s, CASE WHEN %(batch)s IS NULL THEN NULL ELSE now() END "
        "FROM inbox_stage s WHERE NOT EXISTS (SELECT 1 FROM payments_scored p WHERE p.trans_num = s.trans_num) "
        # in key order, as every writer: two validates of the same payments wait for
        # each other's rows in one order (no deadlock)
        "ORDER BY s.trans_num ON CONFLICT (trans_num) DO NOTHING RETURNING trans_num, trans_time",
        {"batch": claim_as},
    )
    return pd.DataFrame(cur.fetchall(), columns=["trans_num", "trans_time"])


def check_rows(records: pd.DataFrame) -> Validated:
    """`ingest.validate.validate`, and should it fail on the batch, each row alone: a row it
    cannot judge is quarantined ("unreadable: TypeError"), never the batch."""
    try:
        return validate_rows(records)
    except Exception as error:  # any row content: the batch goes on row by row
        log.warning(
            "validation failed on the batch (%s): validating its %d rows one by one",
            type(error).__name__,
            len(records),
        )
    goods, bads = [], []
    for position in range(len(records)):
        row = records.iloc[[position]]
        try:
            one = validate_rows(row)
        except Exception as error:
            bads.append(row.assign(reason=f"unreadable: {type(error).__name__}"))
            continue
        goods.append(one.good)
        bads.append(one.bad)
    good = pd.concat(goods, ignore_index=True) if goods else validate_rows(records.iloc[:0]).good
    bad = pd.concat(bads, ignore_index=True) if bads else records.iloc[:0].assign(reason="")
    return Validated(good=good, bad=bad)


def quarantine(cur: psycopg2.extensions.cursor, bad: pd.DataFrame, run_id: str) -> None:
    """Keep the bad rows with their reasons (once per distinct payload), and say so in the log."""
    for _, row in bad.iterrows():
        # Masked (cards.mask_value): a card number in any field, known or not, is never stored.
        payload = mask_value(
            _json_safe({k: v for k, v in row.items() if k != "reason" and not _missing(v)})
        )
        text = json.dumps(payload, sort_keys=True, default=str)
        cur.execute(
            "INSERT INTO payments_quarantine (trans_num, reason, payload, payload_hash, run_id) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (payload_hash) DO NOTHING",
            (
                mask_card_numbers(str(row.get("trans_num"))[:200])  # extract tokenised it
                if not _missing(row.get("trans_num"))
                else None,
                mask_card_numbers(str(row["reason"])),
                text,
                hashlib.sha256(text.encode()).hexdigest(),
                run_id,
            ),
        )
    if len(bad):
        log.warning(
            "run %s: %d payments quarantined: %s",
            run_id,
            len(bad),
            mask_card_numbers("; ".join(sorted(set(map(str, bad["reason"])))))[:500],
        )


def _missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


# -- re-deliveries: one rule for every path (DAG, run-interval, back-fill) ---------------------
REDELIVERED = "redelivered with different contents"
REFUSED = "model refused to score it"  # + the endpoint's reason
_PAYMENT_FIELDS = [c for c in PAYMENT_COLUMNS if c != "trans_num"]


def set_aside_redeliveries(
    cur: psycopg2.extensions.cursor, good: pd.DataFrame, run_id: str
) -> tuple[pd.DataFrame, dict[str, int]]:
    """The payments not received before; the others are set aside, inside the caller's transaction.

    The payment stored first stands (scored in payments_scored, or waiting in payments_inbox): a
    re-delivery with identical contents is a no-op, one with different contents is quarantined
    as a conflict (REDELIVERED; the row is tokenised already) and never changes a score or an
    alert. Compared in PostgreSQL, on the stored column types.
    """
    if good.empty:
        return good, {"redelivered": 0, "conflicts": 0}
    cur.execute(
        "CREATE TEMP TABLE IF NOT EXISTS redelivery_stage "
        "(LIKE payments_inbox INCLUDING DEFAULTS) ON COMMIT DROP"
    )
    cur.execute("TRUNCATE redelivery_stage")
    copy_into(cur, "redelivery_stage", good.loc[:, list(PAYMENT_COLUMNS)])
    differs: dict[str, bool] = {}
    for table in ("payments_scored", "payments_inbox"):
        statement = sql.SQL(
            "SELECT s.trans_num, ({new}) IS DISTINCT FROM ({old}) FROM redelivery_stage s "
            "JOIN {table} o ON o.trans_num = s.trans_num"
        ).format(
            new=sql.SQL(", ").join(sql.Identifier("s", c) for c in _PAYMENT_FIELDS),
            old=sql.SQL(", ").join(sql.Identifier("o", c) for c in _PAYMENT_FIELDS),
            table=sql.Identifier(table),
        )
        cur.execute(statement)
        for trans_num, different in cur.fetchall():
            differs[trans_num] = differs.get(trans_num, False) or bool(different)
    cur.execute(  # refused by the model: waits in quarantine for `quarantine retry`
        "SELECT DISTINCT s.trans_num FROM redelivery_stage s JOIN payments_quarantine q "
        "ON q.trans_num = s.trans_num WHERE starts_with(q.reason, %s)",
        (REFUSED,),
    )
    refused = good["trans_num"].astype(str).isin([row[0] for row in cur.fetchall()])
    seen = good["trans_num"].astype(str).isin(list(differs))
    if refused.any():
        log.info(
            "run %s: %d payments the model refused before are in quarantine, not scored again",
            run_id,
            int(refused.sum()),
        )
    conflicting = good["trans_num"].astype(str).map(differs).fillna(False).astype(bool)
    conflicts = good[seen & conflicting]
    if len(conflicts):
        quarantine(cur, conflicts.assign(reason=REDELIVERED), run_id)
    if seen.any():
        log.info(
            "run %s: %d payments delivered again, stored ones kept (0 changed); "
            "%d of them with different contents, quarantined as conflicts",
            run_id,
            int(seen.sum()),
            len(conflicts),
        )
    return good[~seen & ~refused], {"redelivered": int(seen.sum()), "conflicts": len(conflicts)}


# -- score_and_load: claim, features with history, endpoint, decisions, upsert ----------------
def _lock_for_claims(cur: psycopg2.extensions.cursor) -> None:
    cur.execute("SELECT pg_advisory_xact_lock(%s)", (CLAIM_LOCK,))


def _lock_batch(cur: psycopg2.extensions.cursor, batch_id: BatchId) -> None:
    cur.execute("SELECT pg_advisory_xact_lock_shared(%s)", (CLAIM_LOCK,))
    cur.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (BATCH_LOCK_CLASS, batch_id))


def _inbox_frame(cur: psycopg2.extensions.cursor, batch_id: BatchId) -> pd.DataFrame:
    columns = ", ".join(f'"{c}"' for c in PAYMENT_COLUMNS)
    cur.execute(
        f"SELECT {columns} FROM payments_inbox WHERE batch_id = %s ORDER BY trans_time, trans_num",  # noqa: S608
        (batch_id,),
    )
    frame = pd.DataFrame(cur.fetchall(), columns=list(PAYMENT_COLUMNS))
    frame["trans_time"] = pd.to_datetime(frame["trans_time"], utc=True)
    frame["amt"] = frame["amt"].astype(float)
    frame["is_fraud"] = pd.to_numeric(frame["is_fraud"]).astype("Int64")
    frame["card_last4"] = frame["card_last4"].astype(str)
    return frame


def claim(conn: Connection, batch_id: BatchId) -> pd.DataFrame:
    """Claim every pending inbox row for `batch_id`; the claimed payments, in time order.

    Pending: not claimed, claimed by this batch already (a retry of the run, a back-fill chunk
    that admitted its rows claimed), or claimed longer than STALE_CLAIM ago (a run that died).
    Not only this run's rows: what earlier runs could not score (endpoint switched off,
    database down) is picked up by the next run. This batch's own claims are renewed only once
    older than RENEW_CLAIM (a back-fill chunk's rows, claimed seconds ago, are not rewritten).
    """
    with conn, conn.cursor() as cur:
        _lock_for_claims(cur)
        cur.execute(
            "UPDATE payments_inbox SET batch_id = %(batch)s, claimed_at = now() "
            "WHERE batch_id IS NULL OR claimed_at < now() - %(stale)s "
            "OR (batch_id = %(batch)s AND claimed_at < now() - %(renew)s)",
            {"batch": batch_id, "stale": STALE_CLAIM, "renew": RENEW_CLAIM},
        )
        return _inbox_frame(cur, batch_id)


def endpoint_scores(client: Scorer, matrix: np.ndarray) -> ScoreResult:
    """The endpoint's answer for a chunk's feature matrix: where every score is received (the
    one place to check what the endpoint says about itself, e.g. the version it serves)."""
    return client.predict(matrix)


def score_and_load(
    conn: Connection,
    batch_id: BatchId,
    model: Model,
    client: Scorer,
    settings: Settings | None = None,
) -> Loaded:
    """Claim the pending payments and score and store them, a chunk at a time (`score_chunk`).

    Each chunk is one transaction that upserts the chunk into payments_scored and deletes it
    from the inbox: a payment leaves the inbox only stored (or quarantined). Endpoint down
    (`EndpointUnavailable` after the client's own retries): the chunk's rows stay claimed in
    the inbox, for this task's retry (same batch) or, after STALE_CLAIM, any later run.
    """
    settings = settings or get_settings()
    payments = claim(conn, batch_id)
    loaded = Loaded(batch_id)
    size = settings.upsert_batch_size
    for first in range(0, len(payments), size):
        chunk = payments.iloc[first : first + size].reset_index(drop=True)
        loaded = loaded.plus(score_chunk(conn, batch_id, chunk, model, client))
    if len(payments):
        log.info(
            "batch %s: %d payments scored and stored, %d flagged, %d refused by the model",
            batch_id,
            loaded.loaded,
            loaded.frauds,
            loaded.refused,
        )
    return loaded


def score_chunk(
    conn: Connection,
    batch_id: BatchId,
    payments: pd.DataFrame,
    model: Model,
    client: Scorer,
) -> Loaded:
    """Card history, features, endpoint, decisions and reasons, rules and lists, upsert: one
    claimed chunk. The enabled and shadow rules and the list entries naming the chunk's values
    are evaluated on the same named features the model's matrix is built from (`rules.engine`);
    what they say is stored with each payment (`rule_hits`, `rule_flagged`).

    Scored outside any transaction (the endpoint may take seconds); then, in one transaction,
    the chunk's rows still claimed by `batch_id` are deleted from the inbox and only those are
    stored: a claim taken over meanwhile (STALE_CLAIM) leaves its rows to the new claimer, so a
    payment is stored by one batch, never two. The reasons of the flagged payments (XGBoost's
    exact SHAP, in C++ without the GIL) are computed in a thread while the others are upserted
    (PostgreSQL's own process). Payments the model refuses are quarantined in the same
    transaction, alone: they never block the others.
    """
    named, matrix = model.feature_table(payments, load_card_history(conn, payments))
    result = endpoint_scores(client, matrix)
    if result.model_version != model.version:  # pending again: the next run rebuilds them
        _release(conn, batch_id)
    check_served_version(result.model_version, model.version)  # one model per row, end to end
    version = str(result.model_version)
    probabilities = np.asarray(result.probabilities, dtype=float)
    refused = np.zeros(len(payments), dtype=bool)
    refused[list(result.refused)] = True
    flagged = (probabilities >= model.threshold) & ~refused
    checks = check(live_checks(conn, payments), payments, named)  # rules and lists, beside it
    hits = pd.Series(checks.hits, dtype=object)

    def scored(rows: np.ndarray) -> pd.DataFrame:
        frame = scored_frame(
            payments[rows], named[rows], matrix[rows], probabilities[rows], version, model
        )
        return frame.assign(rule_hits=hits[rows].to_list(), rule_flagged=checks.flagged[rows])

    trans_nums = payments["trans_num"].tolist()
    with ThreadPoolExecutor(max_workers=1) as pool:
        frauds = pool.submit(scored, flagged)
        others = scored(~flagged & ~refused)
        with conn, conn.cursor() as cur:
            _lock_batch(cur, batch_id)
            owned = _take_from_inbox(cur, batch_id, trans_nums)
            held = np.fromiter((t in owned for t in trans_nums), bool, len(trans_nums))
            if refused.any():
                why = {trans_nums[i]: reason for i, reason in result.refused.items()}
                _set_aside_refused(cur, payments[refused & held], why, batch_id)
            flags = [
                *_store(cur, others, held[~flagged & ~refused]),
                *_store(cur, frauds.result(), held[flagged]),
            ]
    stored = payments[~refused & held]
    if len(stored) < int((~refused).sum()):
        log.warning(
            "batch %s: %d payments were claimed by another run meanwhile, left to it",
            batch_id,
            int((~refused).sum()) - len(stored),
        )
    return Loaded(
        batch_id=batch_id,
        loaded=len(stored),
        inserted=int(sum(flags)),
        refused=int(refused.sum()),
        frauds=int((flagged & held).sum()),
        model_version=result.model_version,
        trans_time_from=stored["trans_time"].min().isoformat() if len(stored) else None,
        trans_time_to=stored["trans_time"].max().isoformat() if len(stored) else None,
    )


def _release(conn: Connection, batch_id: BatchId) -> None:
    """Unclaim the batch's inbox rows: the next run claims them at once (no STALE_CLAIM wait)
    and builds their features with the model it then finds."""
    with conn, conn.cursor() as cur:
        cur.execute("UPDATE payments_inbox SET batch_id = NULL WHERE batch_id = %s", (batch_id,))


def _take_from_inbox(
    cur: psycopg2.extensions.cursor, batch_id: BatchId, trans_nums: list[str]
) -> set[str]:
    """Delete the chunk's rows still claimed by `batch_id` from the inbox; their keys."""
    cur.execute(
        "DELETE FROM payments_inbox WHERE batch_id = %s AND trans_num = ANY(%s) "
        "RETURNING trans_num",
        (batch_id, trans_nums),
    )
    return {row[0] for row in cur.fetchall()}


def _store(cur: psycopg2.extensions.cursor, scored: pd.DataFrame, held: np.ndarray) -> list[bool]:
    """Upsert the scored rows taken from the inbox (`held`, row by row; `merge_scored`)."""
    rows = scored if held.all() else scored[held]
    return merge_scored(cur, prepare(rows)) if len(rows) else []


def _set_aside_refused(
    cur: psycopg2.extensions.cursor, payments: pd.DataFrame, why: dict[str, str], run_id: str
) -> None:
    """Payments the model refused to score: quarantined, so that they never block a batch."""
    reasons = payments["trans_num"].map(lambda t: f"{REFUSED}: {why[t]}")
    quarantine(cur, payments.assign(reason=reasons), run_id)


def scored_frame(
    payments: pd.DataFrame,
    named: pd.DataFrame,
    matrix: np.ndarray,
    probabilities: np.ndarray,
    model_version: str,
    model: Model,
) -> pd.DataFrame:
    """Payments plus their scores, decisions and reasons (schema.SCORED_COLUMNS); `named` and
    `matrix` are the payments' named features and model input (`Model.feature_table`)."""
    flagged = probabilities >= model.threshold
    reasons: list[list[dict[str, Any]]] = [[] for _ in range(len(payments))]
    if flagged.any():
        for position, why in zip(
            np.flatnonzero(flagged),
            top_reasons(model, matrix[flagged], named[flagged]),
            strict=True,
        ):
            reasons[position] = why
    return payments.assign(
        fraud_probability=probabilities,
        is_fraud_pred=flagged,
        threshold=model.threshold,
        model_version=model_version,
        reasons=reasons,
        scored_at=pd.Timestamp.now(tz="UTC"),
    )


# -- alert ------------------------------------------------------------------------------------
def alert(conn: Connection, settings: Settings | None = None, target: Any = None) -> dict[str, Any]:
    return alert_pending(conn, settings, target)


# -- back-fill chunks: fetched and checked ahead, then the same admit and score_and_load ------
@dataclass(frozen=True)
class Received:
    """An interval's payments as fetched, then checked row by row (`rows`; None when none came).
    No database is touched: a back-fill receives its next chunk while this one is stored."""

    fetched: int
    rows: Validated | None
    fetched_at: datetime | None = None


def receive(
    start: datetime,
    end: datetime,
    settings: Settings | None = None,
    recheck: tuple[datetime, datetime] | None = None,
) -> Received:
    """Extract and validate an interval in memory (`process_interval`'s first half); with
    `recheck`, that earlier slice too (late payments, `backfill.late_plan`)."""
    settings = settings or get_settings()
    fetched_at = clock.now()
    raw = fetch_window(start, end, settings)
    if recheck is not None:
        raw = pd.concat([fetch_window(*recheck, settings), raw], ignore_index=True)
    if raw.empty:
        return Received(0, None, fetched_at)
    return Received(len(raw), check_rows(to_records(raw, settings)), fetched_at)


def process_interval(
    conn: Connection,
    start: datetime,
    end: datetime,
    *,
    run_id: RunId,
    model: Model,
    client: Scorer,
    settings: Settings | None = None,
    received: Received | None = None,
    shadow: bool = True,
    late_before: datetime | None = None,
    beyond_before: datetime | None = None,
) -> Processed:
    """A back-fill (or reconcile) chunk: receive it (unless `received` already, fetched ahead),
    `admit` it to the inbox claimed under its own batch (the DAG's runs leave it alone unless
    it is left there longer than STALE_CLAIM), `score_and_load` that batch, then shadow-score
    what it stored if a challenger is registered (`pipeline/shadow.py`).

    New payments with time before `late_before` came in a chunk's look-back (before
    `beyond_before`: its re-check): they are recorded as late. A chunk run again admits
    nothing new (re-deliveries are set aside) and stores nothing new.
    """
    settings = settings or get_settings()
    received = receive(start, end, settings) if received is None else received
    batch_id = batch_for(run_id)
    if received.rows is None:
        ingested = Ingested(run_id)
    else:
        with conn, conn.cursor() as cur:
            ingested = admit(
                cur,
                received.rows,
                run_id,
                fetched=received.fetched,
                late_before=late_before,
                fetched_at=received.fetched_at,
                beyond_before=beyond_before,
                claim_as=batch_id,
            )
    loaded = score_and_load(conn, batch_id, model, client, settings)
    # after the chunk is stored: the challenger never holds the champion up
    return Processed(
        ingested, loaded, shadow=shadow_loaded(conn, loaded, settings) if shadow else None
    )


@dataclass(frozen=True)
class Processed:
    """A back-fill chunk's (or a `run_interval`'s) steps: what came in, what was stored, what
    the alert and shadow steps said (None: not run)."""

    ingested: Ingested
    loaded: Loaded
    alerts: dict[str, Any] | None = None
    shadow: dict[str, Any] | None = None

    @property
    def shadowed(self) -> int:
        return int((self.shadow or {}).get("shadowed", 0))


# -- all steps, outside Airflow (back-fills, `make run`, benchmarks) ---------------------------
def run_interval(
    conn: Connection,
    start: datetime,
    end: datetime,
    *,
    run_id: str | None = None,
    model: Model | None = None,
    client: Scorer | None = None,
    send_alerts: bool = True,
    shadow: bool = True,
    settings: Settings | None = None,
    catch_up: bool = False,
) -> Processed:
    """The DAG's tasks for one interval, in order, in one process: ingest -> score_and_load
    -> alert, then the challenger's shadow scoring; `catch_up` as the DAG's ingest (the mark)."""
    settings = settings or get_settings()
    run = RunId(run_id or f"manual__{start.isoformat()}__{end.isoformat()}")
    model = model or champion_model(conn, settings)
    client = client or EndpointClient.from_settings(settings)
    ingested = ingest(conn, run, start, end, settings, catch_up=catch_up)
    loaded = score_and_load(conn, batch_for(run), model, client, settings)
    alerts = alert(conn, settings) if send_alerts else None
    shadowed = shadow_loaded(conn, loaded, settings) if shadow else None
    return Processed(ingested, loaded, alerts, shadowed)
