"""The pipeline's steps, one function per DAG task; the DAG only wires them.

extract -> validate -> transform -> score -> load -> alert (and, beside alert, the challenger's
shadow scoring: `pipeline/shadow.py`). Each step reads its input from a
PostgreSQL table and writes its output to the next one, so tasks exchange references (run id,
batch id, counts) and a payment is never lost between them:

    payments_landing (extract) -> payments_inbox (validate; bad rows -> payments_quarantine)
    -> scoring_stage (transform: features; score: probabilities) -> payments_scored (load)

`transform` claims every pending inbox row, not only this run's: what earlier runs could not
score (endpoint switched off, database down) is picked up by the next run. A claim older than
STALE_CLAIM (a run that died) is taken over. Every step can be re-run: the same interval again
stores nothing new and sends nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

import numpy as np
import pandas as pd
import psycopg2
import psycopg2.extensions
import pyarrow as pa
from psycopg2 import sql
from psycopg2.extras import execute_values

from fraud_pipeline.config import Settings, get_settings
from fraud_pipeline.ingest.cards import mask_card_numbers, mask_identifier, mask_value
from fraud_pipeline.schema import PAYMENT_COLUMNS
from fraud_pipeline.storage.upsert import copy_into, merge_scored, prepare

# What PostgreSQL or the COPY encoding raise for a value that cannot be stored.
STORAGE_ERRORS = (psycopg2.DataError, pa.ArrowException, ValueError, TypeError)

if TYPE_CHECKING:  # both import heavy libraries or settings: the tasks import them when they run
    from fraud_pipeline.ingest.validate import Validated
    from fraud_pipeline.model.artifacts import Model
    from fraud_pipeline.serving.endpoint import ScoreResult

log = logging.getLogger(__name__)

STALE_CLAIM = timedelta(minutes=5)

# Transaction-scoped advisory locks around a batch's hand-over rows (payments_inbox claims and
# scoring_stage). Claiming takes CLAIM_LOCK exclusively: it re-claims, deletes and rewrites stage
# rows, possibly of a batch that is being scored or loaded (a run and its zombie share a batch
# id; a stale claim is taken over). Scoring and loading take it shared, plus their batch's own
# lock (BATCH_LOCK_CLASS, hash of the batch id): two transactions touching the same stage rows
# take turns instead of locking them in different orders (a DELETE's scan order against an
# UPDATE's join order was a deadlock). Each lock is the first statement of its transaction, so
# no transaction waits for one while holding row locks.
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
    run_id: str,
    start: datetime,
    end: datetime,
    settings: Settings | None = None,
    *,
    catch_up: bool = False,
) -> dict[str, Any]:
    """Fetch the interval's payments, tokenise the cards, land them (idempotent per run).

    `catch_up` (the DAG): fetch from the high-water mark when it lags behind `start` (missed
    runs), at most `dag_catchup_max_span_min` minutes. Every windowed fetch also re-reads the
    LATE_PAYMENT_LOOKBACK_MIN minutes before it (already landed ones only,
    `watermark.lookback_start`): a payment delivered after its minute was fetched is new there,
    the others are re-deliveries that validate sets aside. The mark moves with the landing.
    """
    from fraud_pipeline import clock
    from fraud_pipeline.ingest.extract import fetch_current, fetch_window, to_records
    from fraud_pipeline.storage import watermark

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
    return {
        "run_id": run_id,
        "landed": len(rows),
        "start": start.isoformat(),
        "end": end.isoformat(),
        # New payments before `start` came in the look-back: late (validate records them);
        # before `beyond_before`, every earlier look-back missed them: beyond the bound.
        "late_before": start.isoformat(),
        "beyond_before": (
            start - timedelta(minutes=settings.late_payment_lookback_min)
        ).isoformat(),
        "fetched_at": fetched_at.isoformat(),
        "reread": len(reread),
    }


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


# -- validate ---------------------------------------------------------------------------------
def validate(
    conn: Connection,
    run_id: str,
    late_before: datetime | None = None,
    fetched_at: datetime | None = None,
    beyond_before: datetime | None = None,
) -> dict[str, Any]:
    """Landed rows -> inbox (payments not stored yet) or quarantine (with the reason).

    A new payment with time before `late_before` (the run's own interval; extract gives it)
    that only this run landed came in its look-back: it arrived after its minute was fetched,
    and is recorded as late; before `beyond_before` (the re-check), later than the bound.
    One transaction: the landed rows are deleted as they are read, so a failure leaves them landed.
    A row is judged alone when the batch cannot be (`check_rows`) and stored alone when the batch
    cannot be: a row that can be neither judged nor stored is quarantined, so no landed row can
    make every later run fail.
    """
    with conn, conn.cursor() as cur:
        # Every landed row, not only this run's: a run whose validate never ran left its rows.
        cur.execute("DELETE FROM payments_landing RETURNING payload, run_id, trans_num")
        landed = cur.fetchall()
        payloads = [row[0] for row in landed]
        # Landed by another run too (runs that overlap): its own interval may hold them.
        elsewhere = {key for _, other, key in landed if other != run_id}
        if not payloads:
            return {
                "run_id": run_id,
                "good": 0,
                "quarantined": 0,
                "new": 0,
                "redelivered": 0,
                "conflicts": 0,
                "late": 0,
            }
        result = check_rows(pd.DataFrame.from_records(payloads))
        quarantine(cur, result.bad, run_id)
        cur.execute(
            "CREATE TEMP TABLE IF NOT EXISTS inbox_stage (LIKE payments_inbox INCLUDING DEFAULTS) ON COMMIT DROP"
        )
        new, seen, refused = _land_in_inbox(cur, result.good, run_id)
        quarantine(cur, refused, run_id)
        mine = new[~new["trans_num"].astype(str).isin(elsewhere)]
        late = record_late(cur, mine, late_before, fetched_at, run_id, beyond_before)
    return {
        "run_id": run_id,
        "good": len(result.good) - len(refused),
        "quarantined": len(result.bad) + len(refused),
        "new": len(new),
        "late": late,
        **seen,
    }


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
    from fraud_pipeline import clock
    from fraud_pipeline.storage import late

    if late_before is None or new.empty:
        return 0
    times = pd.to_datetime(new["trans_time"], utc=True)
    before = (times < pd.Timestamp(late_before)).to_numpy()
    beyond = before & (times < pd.Timestamp(beyond_before or times.min())).to_numpy()
    when, rows = fetched_at or clock.now(), new[["trans_num", "trans_time"]]
    return late.record(cur, rows[before & ~beyond], when, run_id, beyond_bound=False) + (
        late.record(cur, rows[beyond], when, run_id, beyond_bound=True)
    )


def late_marks(extracted: dict[str, Any]) -> dict[str, datetime | None]:
    """validate's `late_before` and `fetched_at`, from what extract returned (the DAG's XCom)."""
    return {
        key: datetime.fromisoformat(extracted[key]) if extracted.get(key) else None
        for key in ("late_before", "fetched_at", "beyond_before")
    }


def _land_in_inbox(
    cur: psycopg2.extensions.cursor, good: pd.DataFrame, run_id: str
) -> tuple[pd.DataFrame, dict[str, int], pd.DataFrame]:
    """Set re-deliveries aside and put the rest in the inbox: the batch at once, else row by row.

    One row PostgreSQL refuses must not keep the others (nor itself) landed for good: when the
    batch cannot be stored, each row is tried alone and the ones that cannot be are returned,
    with their reason, for the quarantine. The payments new to the inbox: (trans_num, trans_time).
    """
    try:
        new, seen = _land(cur, good, run_id)
        return new, seen, good.iloc[0:0]
    except STORAGE_ERRORS:
        pass
    news, seen, refused = [NO_NEW], {"redelivered": 0, "conflicts": 0}, []
    for position in range(len(good)):
        row = good.iloc[[position]]
        try:
            row_new, row_seen = _land(cur, row, run_id)
        except STORAGE_ERRORS as error:
            refused.append(row.assign(reason=f"not storable: {type(error).__name__}"))
            continue
        news.append(row_new)
        seen = {key: seen[key] + row_seen[key] for key in seen}
    new = pd.concat(news, ignore_index=True)
    return new, seen, pd.concat(refused, ignore_index=True) if refused else good.iloc[0:0]


NO_NEW = pd.DataFrame({"trans_num": pd.Series(dtype=str), "trans_time": pd.Series(dtype=object)})


def _land(
    cur: psycopg2.extensions.cursor, good: pd.DataFrame, run_id: str
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Re-deliveries set aside, the fresh payments inserted into the inbox: all or none."""
    cur.execute("SAVEPOINT land")
    try:
        fresh, seen = set_aside_redeliveries(cur, good, run_id)
        new = _to_inbox(cur, fresh) if len(fresh) else NO_NEW
    except BaseException:
        cur.execute("ROLLBACK TO SAVEPOINT land")
        raise
    cur.execute("RELEASE SAVEPOINT land")
    return new, seen


def _to_inbox(cur: psycopg2.extensions.cursor, good: pd.DataFrame) -> pd.DataFrame:
    """Stage and insert validated payments not stored yet (inside `_land`'s savepoint); the
    ones inserted (trans_num, trans_time)."""
    cur.execute("TRUNCATE inbox_stage")
    copy_into(cur, "inbox_stage", good.loc[:, list(PAYMENT_COLUMNS)])
    columns = ", ".join(f'"{c}"' for c in PAYMENT_COLUMNS)
    cur.execute(
        f"INSERT INTO payments_inbox ({columns}) SELECT {columns} FROM inbox_stage s "  # noqa: S608
        "WHERE NOT EXISTS (SELECT 1 FROM payments_scored p WHERE p.trans_num = s.trans_num) "
        # in key order, as every writer: two validates of the same payments wait for
        # each other's rows in one order (no deadlock)
        "ORDER BY s.trans_num ON CONFLICT (trans_num) DO NOTHING RETURNING trans_num, trans_time"
    )
    return pd.DataFrame(cur.fetchall(), columns=["trans_num", "trans_time"])


def check_rows(records: pd.DataFrame) -> Validated:
    """`ingest.validate.validate`, and should it fail on the batch, each row alone: a row it
    cannot judge is quarantined ("unreadable: TypeError"), never the batch."""
    from fraud_pipeline.ingest.validate import Validated
    from fraud_pipeline.ingest.validate import validate as check

    try:
        return check(records)
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
            one = check(row)
        except Exception as error:
            bads.append(row.assign(reason=f"unreadable: {type(error).__name__}"))
            continue
        goods.append(one.good)
        bads.append(one.bad)
    good = pd.concat(goods, ignore_index=True) if goods else check(records.iloc[:0]).good
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
                mask_identifier(str(row.get("trans_num"))[:200])
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


# -- transform --------------------------------------------------------------------------------
def _lock_for_claims(cur: psycopg2.extensions.cursor) -> None:
    cur.execute("SELECT pg_advisory_xact_lock(%s)", (CLAIM_LOCK,))


def _lock_batch(cur: psycopg2.extensions.cursor, batch_id: str) -> None:
    cur.execute("SELECT pg_advisory_xact_lock_shared(%s)", (CLAIM_LOCK,))
    cur.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (BATCH_LOCK_CLASS, batch_id))


def _inbox_frame(cur: psycopg2.extensions.cursor, batch_id: str) -> pd.DataFrame:
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


def transform(conn: Connection, batch_id: str, model: Model | None = None) -> dict[str, Any]:
    """Claim the pending payments and write their feature rows to scoring_stage."""
    from fraud_pipeline.registry.models import champion_model
    from fraud_pipeline.storage.history import load_card_history

    model = model or champion_model(conn)
    with conn, conn.cursor() as cur:
        _lock_for_claims(cur)
        cur.execute(
            "UPDATE payments_inbox SET batch_id = %s, claimed_at = now() "
            "WHERE batch_id IS NULL OR batch_id = %s OR claimed_at < now() - %s",
            (batch_id, batch_id, STALE_CLAIM),
        )
        cur.execute(
            "DELETE FROM scoring_stage s WHERE s.batch_id <> %s AND NOT EXISTS "
            "(SELECT 1 FROM payments_inbox i WHERE i.batch_id = s.batch_id)",
            (batch_id,),
        )
        payments = _inbox_frame(cur, batch_id)
        cur.execute("DELETE FROM scoring_stage WHERE batch_id = %s", (batch_id,))
        if payments.empty:
            return {"batch_id": batch_id, "rows": 0}
        matrix = model.features(payments, load_card_history(conn, payments))
        stage = pd.DataFrame(
            {
                "batch_id": batch_id,
                "trans_num": payments["trans_num"].astype(str),
                "features": ["{" + ",".join(map(repr, map(float, row))) + "}" for row in matrix],
            }
        )
        copy_into(cur, "scoring_stage", stage)
    return {"batch_id": batch_id, "rows": len(payments)}


# -- score ------------------------------------------------------------------------------------
def score(
    conn: Connection,
    batch_id: str,
    client: Scorer | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Score the batch's feature rows on the SageMaker endpoint; store the probabilities.

    Endpoint down: `scoring.EndpointUnavailable` after the client's own retries; the rows stay
    claimed in the inbox and the next run (or this task's retry) scores them.
    """
    from fraud_pipeline.registry.models import champion_version
    from fraud_pipeline.serving.endpoint import EndpointClient, check_served_version

    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT trans_num, features FROM scoring_stage WHERE batch_id = %s ORDER BY trans_num",
            (batch_id,),
        )
        rows = cur.fetchall()
    if not rows:
        return {"batch_id": batch_id, "rows": 0, "model_version": None}
    matrix = np.asarray([r[1] for r in rows], dtype=np.float32)
    result = (client or EndpointClient.from_settings(settings)).predict(matrix)
    expected = champion_version(conn, settings)
    if result.model_version != expected:  # pending again: the next run claims and rebuilds them
        with conn, conn.cursor() as cur:
            cur.execute(
                "UPDATE payments_inbox SET batch_id = NULL WHERE batch_id = %s", (batch_id,)
            )
    check_served_version(result.model_version, expected)
    scores = pd.DataFrame(
        {
            "trans_num": [r[0] for r in rows],
            "fraud_probability": result.probabilities,
            "model_version": result.model_version or "unknown",
        }
    )
    refused = scores.index.isin(list(result.refused))
    with conn, conn.cursor() as cur:
        _lock_batch(cur, batch_id)
        if refused.any():
            payments = _inbox_frame(cur, batch_id)
            why = {rows[i][0]: reason for i, reason in result.refused.items()}
            _set_aside_refused(cur, payments[payments["trans_num"].isin(why)], why, batch_id)
            cur.execute(
                "DELETE FROM scoring_stage WHERE batch_id = %s AND trans_num = ANY(%s)",
                (batch_id, list(why)),
            )
            cur.execute(
                "DELETE FROM payments_inbox WHERE batch_id = %s AND trans_num = ANY(%s)",
                (batch_id, list(why)),
            )
            scores = scores[~refused]
        cur.execute(
            "CREATE TEMP TABLE IF NOT EXISTS score_updates (trans_num text, fraud_probability "
            "double precision, model_version text) ON COMMIT DROP"
        )
        copy_into(cur, "score_updates", scores)
        cur.execute(
            "UPDATE scoring_stage s SET fraud_probability = u.fraud_probability, "
            "model_version = u.model_version FROM score_updates u "
            "WHERE s.batch_id = %s AND s.trans_num = u.trans_num",
            (batch_id,),
        )
    return {
        "batch_id": batch_id,
        "rows": len(scores),
        "refused": int(refused.sum()),
        "model_version": result.model_version,
    }


def _set_aside_refused(
    cur: psycopg2.extensions.cursor, payments: pd.DataFrame, why: dict[str, str], run_id: str
) -> None:
    """Payments the model refused to score: quarantined, so that they never block a batch."""
    reasons = payments["trans_num"].map(lambda t: f"{REFUSED}: {why[t]}")
    quarantine(cur, payments.assign(reason=reasons), run_id)


# -- load -------------------------------------------------------------------------------------
def scored_frame(
    payments: pd.DataFrame,
    matrix: np.ndarray,
    probabilities: np.ndarray,
    model_version: str,
    model: Model,
) -> pd.DataFrame:
    """Payments plus their scores, decisions and reasons (schema.SCORED_COLUMNS)."""
    from fraud_pipeline.model.reasons import top_reasons
    from fraud_pipeline.serving.endpoint import check_served_version

    check_served_version(model_version, model.version)  # one model per row, end to end
    flagged = probabilities >= model.threshold
    reasons: list[list[dict[str, Any]]] = [[] for _ in range(len(payments))]
    if flagged.any():
        for position, why in zip(
            np.flatnonzero(flagged), top_reasons(model, matrix[flagged]), strict=True
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


def load(conn: Connection, batch_id: str, model: Model | None = None) -> dict[str, Any]:
    """Upsert the scored batch and clear it from inbox and stage, in one transaction."""
    from fraud_pipeline.registry.models import champion_model

    model = model or champion_model(conn)
    with conn, conn.cursor() as cur:
        _lock_batch(cur, batch_id)
        payments = _inbox_frame(cur, batch_id)
        cur.execute(
            "SELECT trans_num, features, fraud_probability, model_version FROM scoring_stage "
            "WHERE batch_id = %s AND fraud_probability IS NOT NULL",
            (batch_id,),
        )
        stage = pd.DataFrame(
            cur.fetchall(), columns=["trans_num", "features", "fraud_probability", "model_version"]
        )
        payments = payments.merge(stage, on="trans_num", how="inner")
        if payments.empty:
            return {"batch_id": batch_id, "loaded": 0, "frauds": 0}
        matrix = np.asarray(payments.pop("features").tolist(), dtype=np.float32)
        probabilities = payments.pop("fraud_probability").to_numpy(dtype=float)
        version = str(payments.pop("model_version").iloc[0])
        scored = scored_frame(payments, matrix, probabilities, version, model)
        flags = merge_scored(cur, prepare(scored))
        cur.execute(
            "DELETE FROM payments_inbox WHERE batch_id = %s AND trans_num = ANY(%s)",
            (batch_id, payments["trans_num"].tolist()),
        )
        cur.execute("DELETE FROM scoring_stage WHERE batch_id = %s", (batch_id,))
    return {
        "batch_id": batch_id,
        "loaded": len(scored),
        "inserted": int(sum(flags)),
        "frauds": int(scored["is_fraud_pred"].sum()),
        "model_version": version,
        # The stored payments' time range: the shadow task finds them by it (trans_time index).
        "trans_time_from": payments["trans_time"].min().isoformat(),
        "trans_time_to": payments["trans_time"].max().isoformat(),
    }


# -- alert ------------------------------------------------------------------------------------
def alert(conn: Connection, settings: Settings | None = None, target: Any = None) -> dict[str, Any]:
    from fraud_pipeline.alerting.alerts import alert_pending

    return alert_pending(conn, settings, target)


# -- back-fills: the same steps in memory, a chunk at a time ----------------------------------
def score_and_store(
    conn: Connection,
    payments: pd.DataFrame,
    model: Model,
    client: Scorer,
    run_id: str = "back-fill",
) -> pd.DataFrame:
    """History, features, endpoint, decisions and reasons, upsert: a batch in memory; its rows.

    The reasons of the flagged payments (XGBoost's exact SHAP, ~3 ms each, in C++ without the
    GIL) are computed in a thread while the other payments are upserted (PostgreSQL's own
    process): on two cores the two overlap. Each upsert batch commits on its own, as always.
    """
    from concurrent.futures import ThreadPoolExecutor

    from fraud_pipeline.serving.endpoint import check_served_version
    from fraud_pipeline.storage.history import load_card_history
    from fraud_pipeline.storage.upsert import upsert_scored

    matrix = model.features(payments, load_card_history(conn, payments))
    scores = client.predict(matrix)
    check_served_version(scores.model_version, model.version)
    version = scores.model_version or "unknown"
    probabilities = scores.probabilities
    if scores.refused:
        why = {payments["trans_num"].iat[i]: reason for i, reason in scores.refused.items()}
        kept = ~payments["trans_num"].isin(why).to_numpy()
        with conn, conn.cursor() as cur:
            _set_aside_refused(cur, payments[~kept], why, run_id)
        payments, matrix, probabilities = payments[kept], matrix[kept], probabilities[kept]
    flagged = probabilities >= model.threshold

    def scored(rows: np.ndarray) -> pd.DataFrame:
        return scored_frame(payments[rows], matrix[rows], probabilities[rows], version, model)

    with ThreadPoolExecutor(max_workers=1) as pool:
        frauds = pool.submit(scored, flagged)
        others = scored(~flagged)
        upsert_scored(conn, others)
        upsert_scored(conn, frauds.result())
    return pd.concat([others, frauds.result()]).loc[payments.index]


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
    from fraud_pipeline import clock
    from fraud_pipeline.ingest.extract import fetch_window, to_records

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
    run_id: str,
    model: Model,
    client: Scorer,
    settings: Settings | None = None,
    received: Received | None = None,
    shadow: bool = True,
    late_before: datetime | None = None,
    beyond_before: datetime | None = None,
) -> dict[str, Any]:
    """Extract and validate (unless `received` already), score and upsert an interval, then
    shadow-score it with the challenger if one is registered (`pipeline/shadow.py`).

    New payments with time before `late_before` came in a chunk's look-back (before
    `beyond_before`: its re-check): they are recorded as late, with the set-aside, before
    scoring.

    The DAG's tasks hand payments over through PostgreSQL so that each can be retried alone; a
    back-fill chunk is retried whole instead (payments stored already are set aside by the same
    re-delivery rule as the DAG's validate, every write is an idempotent upsert, alert
    bookkeeping is kept), which spares four table round trips per payment.
    """
    settings = settings or get_settings()
    received = receive(start, end, settings) if received is None else received
    if received.rows is None:
        return {
            "run_id": run_id,
            "fetched": 0,
            "quarantined": 0,
            "loaded": 0,
            "frauds": 0,
            "redelivered": 0,
            "conflicts": 0,
            "late": 0,
        }
    result = received.rows
    with conn, conn.cursor() as cur:
        quarantine(cur, result.bad, run_id)
        fresh, seen = set_aside_redeliveries(cur, result.good, run_id)
        late = record_late(cur, fresh, late_before, received.fetched_at, run_id, beyond_before)
    payments = fresh.sort_values(["trans_time", "trans_num"], ignore_index=True)
    frauds, shadowed = 0, 0
    if len(payments):
        stored = score_and_store(conn, payments, model, client, run_id)
        frauds = int(stored["is_fraud_pred"].sum())
        if shadow:  # after the chunk is stored: the challenger never holds the champion up
            from fraud_pipeline.pipeline.shadow import shadow_payments

            stored_payments = stored.loc[:, list(PAYMENT_COLUMNS)]
            shadowed = shadow_payments(conn, stored_payments, settings)["shadowed"]
    return {
        "run_id": run_id,
        "fetched": received.fetched,
        "quarantined": len(result.bad),
        "loaded": len(payments),
        "frauds": frauds,
        "shadowed": shadowed,
        "late": late,
        **seen,
    }


# -- all steps, outside Airflow (backfills, `make run`, benchmarks) -----------------------------
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
) -> dict[str, Any]:
    """Every step for one interval, in order, as the DAG would run them (the challenger's
    shadow scoring last, after the alerts); `catch_up` as the DAG's extract (the mark)."""
    from fraud_pipeline.registry.models import champion_model

    settings = settings or get_settings()
    run_id = run_id or f"manual__{start.isoformat()}__{end.isoformat()}"
    model = model or champion_model(conn, settings)
    summary: dict[str, Any] = {"run_id": run_id}
    summary["extract"] = extracted = extract(conn, run_id, start, end, settings, catch_up=catch_up)
    summary["validate"] = validate(conn, run_id, **late_marks(extracted))
    summary["transform"] = transform(conn, run_id, model)
    summary["score"] = score(conn, run_id, client, settings)
    summary["load"] = load(conn, run_id, model)
    if send_alerts:
        summary["alert"] = alert(conn, settings)
    if shadow:
        from fraud_pipeline.pipeline.shadow import shadow_loaded

        summary["shadow"] = shadow_loaded(conn, summary["load"], settings)
    return summary
