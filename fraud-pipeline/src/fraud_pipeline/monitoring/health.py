"""One day's model health: compute the figures, store them in `model_health`, warn once.

Figures for a business day, against the reference stored with the model (reference.py):
- `psi_score` and `psi_<feature>` (the model's top features, recomputed with card history for a
  sample of the day's payments): drift, breached above MONITOR_PSI_MAX; while less than the
  features' LOOKBACK is loaded before the day (a fresh start), the score's and the card-history
  features' PSI are stored but not judged (no threshold): their shift is the history missing
  from the database, not a change in the world;
- `flag_share`: breached above MONITOR_FLAG_SHARE_RATIO_MAX times the reference's share;
- `alert_volume` (payments flagged): breached above MONITOR_ALERT_VOLUME_RATIO_MAX times the
  median of the previous 30 days that had payments (no threshold without history);
- `quarantine_share`: payments refused by validation, of all received that day;
- `confirmed_precision` of the alerts of the last 30 days the analysts reviewed
  (v_alert_verdicts), with `review_count`: breached below MONITOR_PRECISION_MIN once there are
  MONITOR_PRECISION_MIN_REVIEWS reviews.
A re-run replaces the day's figures; the warning email is sent once per day and model
(`model_health_warnings` is written in the transaction that sent it).
"""

from __future__ import annotations

import logging
import statistics
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psycopg2.extensions

from fraud_pipeline import clock
from fraud_pipeline.alerting.mail import SmtpTarget, compose, send
from fraud_pipeline.config import Settings, get_settings
from fraud_pipeline.model.artifacts import read_metadata
from fraud_pipeline.model.features import HISTORY_NUMERIC, feature_frame
from fraud_pipeline.model.psi import psi, shares
from fraud_pipeline.model.reference import SCORE, load_reference
from fraud_pipeline.schema import LOOKBACK
from fraud_pipeline.storage import watermark
from fraud_pipeline.storage.db import connect
from fraud_pipeline.storage.history import load_batch_history, load_card_history

log = logging.getLogger(__name__)

WINDOW_DAYS = 30
PSI_PREFIX = "psi_"
# What a short loaded history shifts on its own.
HISTORY_DEPENDENT = frozenset({SCORE, *HISTORY_NUMERIC})


@dataclass(frozen=True)
class Figure:
    metric: str
    value: float | None
    threshold: float | None
    breached: bool


def _above(metric: str, value: float | None, threshold: float | None) -> Figure:
    breached = value is not None and threshold is not None and value > threshold
    return Figure(metric, value, threshold, breached)


def _day_scores(cur: psycopg2.extensions.cursor, day: date) -> tuple[np.ndarray, int]:
    lo, hi = clock.day_bounds(day)
    cur.execute(
        "SELECT fraud_probability, is_fraud_pred FROM payments_scored "
        "WHERE trans_time >= %s AND trans_time < %s",
        (lo, hi),
    )
    rows = cur.fetchall()
    return np.array([r[0] for r in rows], dtype=float), sum(1 for r in rows if r[1])


def _day_features(
    conn: psycopg2.extensions.connection, day: date, names: list[str], sample: int
) -> Any:
    """The model's features of up to `sample` of the day's payments (a fixed sample: the
    same day gives the same figures), each with its card's stored history."""
    lo, hi = clock.day_bounds(day)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT trans_num, card_token FROM payments_scored "
            "WHERE trans_time >= %s AND trans_time < %s ORDER BY md5(trans_num) LIMIT %s",
            (lo, hi, sample),
        )
        picked = cur.fetchall()
    if not picked:
        return None
    # The picked payments in full, then their cards' history as the scoring run loads it.
    day_rows = load_card_history(conn, [r[1] for r in picked], hi, since=lo)
    payments = day_rows[day_rows["trans_num"].isin({r[0] for r in picked})].reset_index(drop=True)
    return feature_frame(payments, load_batch_history(conn, payments))[names]


def history_complete(day: date, loaded_from: datetime | None) -> bool:
    """Whether every payment of `day` had its card's full LOOKBACK loaded before it."""
    return loaded_from is not None and loaded_from <= clock.day_start(day) - LOOKBACK


def _drift(
    reference: dict[str, Any], name: str, values: Any, settings: Settings, judged: bool
) -> Figure:
    metric, threshold = f"{PSI_PREFIX}{name}", settings.monitor_psi_max if judged else None
    if values is None or len(values) == 0:
        return _above(metric, None, threshold)
    expected = reference["distributions"][name]
    actual = shares(np.asarray(values, dtype=float), expected["edges"])
    return _above(metric, psi(expected["shares"], actual), threshold)


def _alert_volume_median(cur: psycopg2.extensions.cursor, day: date) -> float | None:
    lo, _ = clock.day_bounds(day - timedelta(days=WINDOW_DAYS))
    hi, _ = clock.day_bounds(day)
    cur.execute(
        "SELECT count(*) FILTER (WHERE is_fraud_pred) FROM payments_scored "
        "WHERE trans_time >= %s AND trans_time < %s "
        "GROUP BY (trans_time AT TIME ZONE %s)::date",
        (lo, hi, get_settings().business_tz),
    )
    volumes = [row[0] for row in cur.fetchall()]
    return float(statistics.median(volumes)) if volumes else None


def _quarantined(cur: psycopg2.extensions.cursor, day: date) -> int:
    cur.execute(
        "SELECT count(*) FROM payments_quarantine WHERE received_at >= %s AND received_at < %s",
        clock.day_bounds(day),
    )
    return int(cur.fetchone()[0])


def _reviews(cur: psycopg2.extensions.cursor, day: date) -> tuple[int, int]:
    lo, _ = clock.day_bounds(day - timedelta(days=WINDOW_DAYS - 1))
    _, hi = clock.day_bounds(day)
    cur.execute(
        "SELECT count(*) FILTER (WHERE v.verdict = 'confirmed_fraud'), count(*) "
        "FROM v_alert_verdicts v JOIN payments_scored p USING (trans_num) "
        "WHERE p.trans_time >= %s AND p.trans_time < %s",
        (lo, hi),
    )
    confirmed, reviewed = cur.fetchone()
    return int(confirmed), int(reviewed)


def compute(
    conn: psycopg2.extensions.connection,
    day: date,
    reference: dict[str, Any],
    settings: Settings | None = None,
) -> list[Figure]:
    """Every figure of `day` against `reference`."""
    settings = settings or get_settings()
    names = list(reference["features"])
    with conn.cursor() as cur:
        scores, flagged = _day_scores(cur, day)
        median = _alert_volume_median(cur, day)
        quarantined = _quarantined(cur, day)
        confirmed, reviewed = _reviews(cur, day)
        full_history = history_complete(day, watermark.loaded_from(cur))
    features = _day_features(conn, day, names, settings.monitor_feature_sample)
    payments = len(scores)
    precision = confirmed / reviewed if reviewed else None
    ratio = settings.monitor_alert_volume_ratio_max
    return [
        _drift(reference, SCORE, scores, settings, full_history),
        *(
            _drift(
                reference,
                n,
                None if features is None else features[n],
                settings,
                full_history or n not in HISTORY_DEPENDENT,
            )
            for n in names
        ),
        _above(
            "flag_share",
            flagged / payments if payments else None,
            settings.monitor_flag_share_ratio_max * float(reference["flag_share"]),
        ),
        _above("alert_volume", float(flagged), None if median is None else ratio * median),
        _above(
            "quarantine_share",
            quarantined / (payments + quarantined) if payments + quarantined else None,
            settings.monitor_quarantine_share_max,
        ),
        Figure(
            "confirmed_precision",
            precision,
            settings.monitor_precision_min,
            precision is not None
            and reviewed >= settings.monitor_precision_min_reviews
            and precision < settings.monitor_precision_min,
        ),
        Figure(
            "review_count", float(reviewed), float(settings.monitor_precision_min_reviews), False
        ),
    ]


def store(
    cur: psycopg2.extensions.cursor, day: date, model_version: str, figures: list[Figure]
) -> None:
    """Upsert the day's figures: a re-run replaces them."""
    for figure in figures:
        cur.execute(
            "INSERT INTO model_health (day, model_version, metric, value, threshold, breached) "
            "VALUES (%s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (day, model_version, metric) DO UPDATE SET value = excluded.value, "
            "threshold = excluded.threshold, breached = excluded.breached, computed_at = now()",
            (day, model_version, figure.metric, figure.value, figure.threshold, figure.breached),
        )


def warn_once(
    cur: psycopg2.extensions.cursor,
    day: date,
    model_version: str,
    breached: list[Figure],
    target: SmtpTarget,
    settings: Settings,
) -> bool:
    """Send the day's one warning unless it was sent; True when sent now. The caller commits
    after this returns: a refused email (AlertError) rolls the record back for the retry."""
    cur.execute(
        "INSERT INTO model_health_warnings (day, model_version, metrics) VALUES (%s, %s, %s) "
        "ON CONFLICT (day, model_version) DO NOTHING RETURNING day",
        (day, model_version, [f.metric for f in breached]),
    )
    if cur.fetchone() is None:
        log.info("the model health warning of %s was already sent", day)
        return False
    names = ", ".join(f.metric for f in breached)
    subject = f"[fraud] Model health warning {day.isoformat()}: {names}"
    context = {
        "day": day.isoformat(),
        "model_version": model_version,
        "figures": breached,
        "report_url": settings.report_url,
    }
    message_id = f"fraud-model-health-{day.isoformat()}-{model_version}"
    send(compose(settings, subject, message_id, "model_health", context), target)
    return True


def check_day(
    conn: psycopg2.extensions.connection,
    day: date,
    target: SmtpTarget | None = None,
    artifacts_dir: Path | None = None,
) -> dict[str, Any]:
    """Compute, store and (once) warn for `day`; return what was found."""
    settings = get_settings()
    artifacts_dir = Path(artifacts_dir or settings.artifacts_dir)
    reference = load_reference(artifacts_dir)
    model_version = str(read_metadata(artifacts_dir)["model_version"])
    figures = compute(conn, day, reference, settings)
    breached = [f for f in figures if f.breached]
    with conn, conn.cursor() as cur:
        store(cur, day, model_version, figures)
        warned = bool(breached) and warn_once(
            cur,
            day,
            model_version,
            breached,
            target or SmtpTarget.from_settings(settings),
            settings,
        )
    return {
        "day": day.isoformat(),
        "model_version": model_version,
        "breached": [f.metric for f in breached],
        "warned": warned,
    }


def main(day: str | None = None) -> int:
    """`fraud-pipeline monitor check`: one day's health, printed."""
    conn = connect()
    try:
        result = check_day(conn, date.fromisoformat(day) if day else clock.yesterday())
    finally:
        conn.close()
    print(result)
    return 0
