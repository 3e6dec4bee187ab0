"""Shadow scoring: the registered challenger scores each run's payments beside the champion.

Off the hot path: the DAG runs it after score_and_load, beside alert, so the champion's alerts never wait
for it, and whatever goes wrong with the challenger (artifacts missing or altered, a failure
while scoring) is logged and leaves those payments unshadowed: it never fails the run. The
challenger is not deployed to the endpoint: it scores in-process, with its own transformer and
the same card history, from artifacts fetched from the registry's store and checked against
the registry's SHA-256s (`versions.fetch_verified`), loaded once per process and version.
Its probabilities go to `shadow_scores` (migration 020), upserted: a re-run changes nothing.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import psycopg2
from psycopg2 import sql

from fraud_pipeline.config import Settings, get_settings
from fraud_pipeline.registry import versions
from fraud_pipeline.registry.models import model_store, version_model
from fraud_pipeline.schema import PAYMENT_COLUMNS
from fraud_pipeline.storage.history import load_card_history, payment_columns, payments_frame

if TYPE_CHECKING:
    from fraud_pipeline.model.artifacts import Model
    from fraud_pipeline.pipeline.results import Loaded
    from fraud_pipeline.pipeline.steps import Connection

log = logging.getLogger(__name__)

# The payments a batch stored, by their time range (the trans_time index), not shadowed yet.
_UNSHADOWED = sql.SQL(
    "SELECT {columns} FROM payments_scored p WHERE p.trans_time >= %s AND p.trans_time <= %s "
    "AND NOT EXISTS (SELECT 1 FROM shadow_scores s "
    "WHERE s.trans_num = p.trans_num AND s.model_version = %s) "
    "ORDER BY p.trans_time, p.trans_num"
).format(columns=payment_columns(PAYMENT_COLUMNS, "p"))

# One statement for the whole batch: arrays, in key order (as every writer: concurrent upserts
# never deadlock), unnested by the server; a re-run replaces the scores instead of doubling them.
_UPSERT = (
    "INSERT INTO shadow_scores (trans_num, model_version, fraud_probability, is_fraud_pred, "
    "threshold) SELECT t.trans_num, %(version)s, t.p, t.p >= %(threshold)s, %(threshold)s "
    "FROM unnest(%(trans_nums)s::text[], %(probabilities)s::float8[]) AS t (trans_num, p) "
    "ORDER BY t.trans_num "
    "ON CONFLICT (trans_num, model_version) DO UPDATE SET "
    "fraud_probability = EXCLUDED.fraud_probability, is_fraud_pred = EXCLUDED.is_fraud_pred, "
    "threshold = EXCLUDED.threshold, scored_at = now()"
)


def latest_challenger(conn: Connection) -> versions.ModelVersion | None:
    """The challenger registered last, if any: the one shadow-scored."""
    with conn:
        challengers = [v for v in versions.list_versions(conn) if v.status == "challenger"]
    return challengers[-1] if challengers else None


def score_payments(conn: Connection, payments: pd.DataFrame, model: Model) -> int:
    """The challenger's probabilities and decisions for `payments` (already stored), upserted."""
    if payments.empty:
        return 0
    matrix = model.features(payments, load_card_history(conn, payments))
    probabilities = np.clip(model.predict(matrix), 0.0, 1.0)
    params = {
        "version": model.version,
        "threshold": float(model.threshold),
        "trans_nums": payments["trans_num"].astype(str).tolist(),
        "probabilities": probabilities.astype(float).tolist(),
    }
    with conn, conn.cursor() as cur:
        cur.execute(_UPSERT, params)
    return len(payments)


def _unshadowed(conn: Connection, first: str, last: str, version: str) -> pd.DataFrame:
    with conn, conn.cursor() as cur:
        cur.execute(
            _UNSHADOWED, (datetime.fromisoformat(first), datetime.fromisoformat(last), version)
        )
        return payments_frame(cur.fetchall(), PAYMENT_COLUMNS)


def _guarded(
    conn: Connection, score: Callable[[Model], int], settings: Settings | None
) -> dict[str, Any]:
    """Find the challenger, load it and run `score(model)`; log any failure, never raise (and
    leave the connection usable: a back-fill goes on with its next chunk)."""
    settings = settings or get_settings()
    version: str | None = None
    try:
        found = latest_challenger(conn)
        if found is None:
            return {"challenger": None, "shadowed": 0}
        version = found.version
        shadowed = score(version_model(found, model_store(settings)))
    except Exception as error:  # the challenger must never fail the champion's run
        with contextlib.suppress(psycopg2.Error):
            conn.rollback()
        log.warning(
            "shadow scoring with challenger %s failed, payments left unshadowed: %s: %s",
            version,
            type(error).__name__,
            error,
            exc_info=True,
        )
        return {"challenger": version, "shadowed": 0, "error": f"{type(error).__name__}: {error}"}
    log.info("shadow-scored %d payments with challenger %s", shadowed, version)
    return {"challenger": version, "shadowed": shadowed}


def shadow_loaded(
    conn: Connection, loaded: Loaded, settings: Settings | None = None
) -> dict[str, Any]:
    """The shadow step of every path: the payments `steps.score_and_load` stored (found by their
    time range), those not shadowed yet, scored by the challenger. No challenger: a no-op."""
    first, last = loaded.trans_time_from, loaded.trans_time_to
    if not first or not last:
        return {"challenger": None, "shadowed": 0}

    def score(model: Model) -> int:
        return score_payments(conn, _unshadowed(conn, first, last, model.version), model)

    return _guarded(conn, score, settings)
