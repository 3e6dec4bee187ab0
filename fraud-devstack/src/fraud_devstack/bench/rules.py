"""What 50 enabled rules and a few hundred list entries add to the pipeline's run (issue 30:
within 10%).

The same payments run through the one path's `score_and_load` (claim, card history, features,
scoring, rules, upsert) in two scratch databases: one with no rule, one with `RULES` enabled rules
(payment fields and the model's features, `and`/`or`/`in`, as leads write them) and `ENTRIES`
block/allow entries. Each run is a fresh batch of payments (the next minutes), both sides in
alternating order, after one untimed run. Scoring is in process (the model's own `predict`),
not over HTTP: the run measured is shorter than the DAG's, so the overhead is an upper bound.

- `rules_run_s`: the median run, without and with the rules;
- `rules_overhead_pct`: the goal's figure;
- `rules_hits`: payments the rules flagged (the rules did match: the bench is not measuring
  rules that never fire).
"""

from __future__ import annotations

import statistics
import time
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
import psycopg2

from fraud_devstack.bench.minutes import START
from fraud_devstack.bench.storage import scratch_database
from fraud_pipeline.ingest.validate import Validated
from fraud_pipeline.model.artifacts import Model, load_model
from fraud_pipeline.pipeline import steps
from fraud_pipeline.pipeline.results import BatchId, RunId
from fraud_pipeline.serving.endpoint import ScoreResult

RULES = 50
ENTRIES = 300
CATEGORIES = ["shopping_net", "misc_net", "grocery_pos", "shopping_pos", "gas_transport"]


def rule_texts(count: int = RULES) -> list[str]:
    """`count` rules of the shapes leads write: amounts, categories, card history, night."""
    shapes = [
        "amt > {a} and category == '{c}'",
        "card_count_24h >= {n} and amt > {b}",
        "is_night == 1 and amt > {a} and category in ['{c}', 'misc_net']",
        "amt_vs_card_mean_30d > {r} or card_sum_24h > {s}",
        "distance_km > {d} and new_category_7d == 1 and not category in ['gas_transport']",
    ]
    return [
        shapes[i % len(shapes)].format(
            a=400 + 20 * i,
            b=50 + i,
            c=CATEGORIES[i % len(CATEGORIES)],
            n=4 + i % 5,
            r=3 + i % 7,
            s=1500 + 50 * i,
            d=115 + i,
        )
        for i in range(count)
    ]


def install_rules(url: str, count: int, entries: int) -> None:
    """Enabled rules and list entries, written straight (the bench skips the life cycle)."""
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        for i, text in enumerate(rule_texts(count)):
            cur.execute(
                "INSERT INTO fraud_rules (name, expression, mode, created_by, updated_by) "
                "VALUES (%s, %s, 'enabled', 'bench', 'bench')",
                (f"bench rule {i}", text),
            )
        for i in range(entries):
            cur.execute(
                "INSERT INTO fraud_list_entries (list, field, value, added_by) "
                "VALUES (%s, %s, %s, 'bench')",
                (
                    "block" if i % 3 else "allow",
                    ("merchant", "category", "card_token")[i % 3],
                    f"bench-{i:064d}"[-64:] if i % 3 == 2 else f"bench merchant {i}",
                ),
            )
    conn.close()


class InProcess:
    def __init__(self, model: Model) -> None:
        self.model = model

    def predict(self, matrix: np.ndarray) -> ScoreResult:
        return ScoreResult(self.model.predict(matrix), self.model.version)


def timed_run(url: str, model: Model, frame: pd.DataFrame, batch: str) -> float:
    conn = psycopg2.connect(url)
    try:
        checked = Validated(good=frame, bad=frame.iloc[:0].assign(reason=""))
        with conn, conn.cursor() as cur:
            steps.admit(cur, checked, RunId(batch), fetched=len(frame), claim_as=BatchId(batch))
        began = time.perf_counter()
        steps.score_and_load(conn, BatchId(batch), model, InProcess(model))
        return time.perf_counter() - began
    finally:
        conn.close()


def run(runs: int = 10, per_run: int = 2_000, rules: int = RULES) -> dict[str, Any]:
    """The median `score_and_load` of `per_run` payments, without and with `rules` rules."""
    from fraud_devstack.stack.generate import payments_between
    from fraud_pipeline.ingest.payments import to_payments

    model = load_model()
    with scratch_database() as without_url, scratch_database() as with_url:
        install_rules(with_url, rules, ENTRIES)
        times: dict[str, list[float]] = {without_url: [], with_url: []}
        for minute in range(runs + 1):
            first = pd.Timestamp(START + timedelta(minutes=minute))
            raw = payments_between(
                first, first + pd.Timedelta(minutes=1), seed=minute, rate_per_min=per_run
            )
            frame = to_payments(raw)
            order = [without_url, with_url] if minute % 2 else [with_url, without_url]
            for url in order:
                seconds = timed_run(url, model, frame, f"bench__{minute}")
                if minute:  # the first run warms the connections and the caches up
                    times[url].append(seconds)
        with psycopg2.connect(with_url) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT count(*), count(*) FILTER (WHERE rule_flagged) FROM payments_scored"
            )
            stored, hits = cur.fetchone()
        conn.close()
    without, with_rules = (statistics.median(times[u]) for u in (without_url, with_url))
    figures = {
        "rules_count": rules,
        "rules_list_entries": ENTRIES,
        "rules_runs": runs,
        "rules_payments_per_run": int(stored) // (runs + 1),
        "rules_hits": int(hits),
        "rules_run_s": {"without": without, "with": with_rules},
        "rules_overhead_pct": 100 * (with_rules / without - 1),
    }
    if not hits:
        raise RuntimeError("the bench's rules flagged nothing: they measure nothing")
    print(
        f"  score_and_load of {figures['rules_payments_per_run']:,} payments: {without:.3f} s "
        f"without rules, {with_rules:.3f} s with {rules} rules and {ENTRIES} list entries "
        f"({figures['rules_overhead_pct']:+.1f}%; {hits:,} flagged)",
        flush=True,
    )
    return figures
