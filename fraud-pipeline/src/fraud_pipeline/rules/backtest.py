"""What a rule would have done on the last N days of stored payments, before it alerts.

The rule is evaluated on the stored payments of [now - N days, now) exactly as `score_chunk`
evaluates it (same language, same columns; features recomputed from the stored card history
only when the rule reads one). Figures: payments, hits, hits per business day, precision and
recall against the analysts' verdicts (`v_alert_verdicts`: confirmed fraud / false alarm) and,
where the payment carries one, against the `is_fraud` label, and the overlap with the model's
alerts (`is_fraud_pred`). `run` stores them in fraud_rule_backtests and audits the run.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
import psycopg2.extensions
from psycopg2 import sql

from fraud_pipeline import clock
from fraud_pipeline.model.artifacts import load_model
from fraud_pipeline.rules import store
from fraud_pipeline.rules.engine import columns_for
from fraud_pipeline.rules.language import PAYMENT_FIELDS, Compiled, compile_rule
from fraud_pipeline.schema import PAYMENT_COLUMNS
from fraud_pipeline.security import audit
from fraud_pipeline.storage.history import load_card_history, payment_columns

MAX_DAYS = 366

_PAYMENTS = sql.SQL(
    "SELECT {columns}, p.is_fraud_pred, v.verdict FROM payments_scored p "
    "LEFT JOIN v_alert_verdicts v ON v.trans_num = p.trans_num "
    "WHERE p.trans_time >= %s AND p.trans_time < %s ORDER BY p.trans_time, p.trans_num"
).format(columns=payment_columns(PAYMENT_COLUMNS, "p"))


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def stored_payments(cur: psycopg2.extensions.cursor, since: Any, until: Any) -> pd.DataFrame:
    cur.execute(_PAYMENTS, (since, until))
    names = [*PAYMENT_COLUMNS, "is_fraud_pred", "verdict"]
    frame = pd.DataFrame(cur.fetchall(), columns=names)
    frame["trans_time"] = pd.to_datetime(frame["trans_time"], utc=True)
    return frame


def matches(
    conn: psycopg2.extensions.connection, compiled: Compiled, payments: pd.DataFrame
) -> np.ndarray:
    """The rule on stored payments; the model's named features are rebuilt only if it reads one."""
    features = pd.DataFrame(index=payments.index)
    if not compiled.fields <= set(PAYMENT_FIELDS) and len(payments):
        features = load_model().feature_table(payments, load_card_history(conn, payments))[0]
    if not len(payments):
        return np.zeros(0, dtype=bool)
    return compiled.evaluate(columns_for(payments, features, set(compiled.fields)))


def figures(conn: psycopg2.extensions.connection, expression: str, days: int) -> dict[str, Any]:
    """The backtest's figures for an expression on the last `days` days of stored payments."""
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"a backtest covers 1 to {MAX_DAYS} days, not {days}")
    compiled = compile_rule(expression)
    until = clock.now()
    since = until - timedelta(days=days)
    with conn.cursor() as cur:
        payments = stored_payments(cur, since, until)
    hit = matches(conn, compiled, payments)
    verdict = payments["verdict"].to_numpy(dtype=object)
    confirmed, false_alarm = verdict == "confirmed_fraud", verdict == "false_alarm"
    labelled = payments["is_fraud"].notna().to_numpy()
    fraud = labelled & (pd.to_numeric(payments["is_fraud"]).fillna(0).to_numpy() == 1)
    model = payments["is_fraud_pred"].fillna(False).to_numpy(dtype=bool)
    days_of = payments["trans_time"].dt.tz_convert(clock.business_tz()).dt.date
    per_day = {str(d): int(n) for d, n in days_of[hit].value_counts().sort_index().items()}
    tp_verdict = int((hit & confirmed).sum())
    tp_label = int((hit & fraud).sum())
    return {
        "since": since.isoformat(),
        "until": until.isoformat(),
        "days": days,
        "expression": expression,
        "payments": len(payments),
        "hits": int(hit.sum()),
        "hits_per_day": per_day,
        "alerts_per_day": round(float(hit.sum()) / days, 2),
        "verdicts": {
            "confirmed": tp_verdict,
            "false_alarms": int((hit & false_alarm).sum()),
            "precision": _ratio(tp_verdict, int((hit & (confirmed | false_alarm)).sum())),
            "recall": _ratio(tp_verdict, int(confirmed.sum())),
        },
        "labels": {
            "labelled_hits": int((hit & labelled).sum()),
            "frauds_hit": tp_label,
            "precision": _ratio(tp_label, int((hit & labelled).sum())),
            "recall": _ratio(tp_label, int(fraud.sum())),
        },
        "model": {
            "model_alerts": int(model.sum()),
            "both": int((hit & model).sum()),
            "rule_only": int((hit & ~model).sum()),
        },
    }


def run(
    conn: psycopg2.extensions.connection,
    name_or_id: str | int,
    days: int,
    actor: str,
    source: str = "",
) -> dict[str, Any]:
    """Backtest a rule's current version, store the figures and audit the run (one transaction
    for the record; the figures are computed before, outside it)."""
    with conn, conn.cursor() as cur:
        current = store.rule(cur, name_or_id)
    result = figures(conn, current.expression, days)
    with conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO fraud_rule_backtests (rule_id, version, days, since, until, figures, "
            "run_by) VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s)",
            (
                current.rule_id,
                current.version,
                days,
                result["since"],
                result["until"],
                json.dumps(result),
                actor,
            ),
        )
        detail = {"name": current.name, "version": current.version, "days": days}
        detail |= {"hits": result["hits"], "precision": result["verdicts"]["precision"]}
        audit.record(cur, actor, store.RULE_BACKTEST, f"rule {current.rule_id}", detail, source)
    return {"rule": current.name, "version": current.version, **result}
