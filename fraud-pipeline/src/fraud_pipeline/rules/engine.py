"""Rules and lists on a chunk of payments, beside the model, in the same step (`score_chunk`).

`live_checks` reads the rules in shadow or enabled mode and the list entries that match the
chunk's merchants, cards and categories (one query each), and `check` evaluates them column-wise.
Per payment: `hits` (every rule and list entry that matched, shadow rules included, stored in
`payments_scored.rule_hits`) and `flagged` (an enabled rule or a block list alerts it; an
allow-listed card, merchant or category is never alerted by a rule — the model's own decision,
`is_fraud_pred`, is left as it is). Nothing live: no query beyond the rules' one, no work.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Literal

import numpy as np
import pandas as pd
import psycopg2.extensions

from fraud_pipeline.rules.language import FIELDS, PAYMENT_FIELDS, Compiled, compile_rule

Mode = Literal["draft", "shadow", "enabled", "disabled"]
LIST_FIELDS: Final = ("merchant", "card_token", "category")
LISTS: Final = ("block", "allow")


@dataclass(frozen=True)
class LiveRule:
    rule_id: int
    version: int
    name: str
    mode: Mode
    compiled: Compiled


@dataclass(frozen=True)
class ListEntry:
    entry_id: int
    list: str  # block | allow
    field: str  # merchant | card_token | category
    value: str


@dataclass(frozen=True)
class Checks:
    """What the rules and lists said about each payment of a chunk."""

    hits: list[list[dict[str, Any]]]
    flagged: np.ndarray  # alerted by a rule or a list

    @staticmethod
    def none(rows: int) -> Checks:
        return Checks([[] for _ in range(rows)], np.zeros(rows, dtype=bool))


@dataclass(frozen=True)
class RuleSet:
    rules: list[LiveRule] = field(default_factory=list)
    entries: list[ListEntry] = field(default_factory=list)


_LIVE_RULES = (
    "SELECT rule_id, version, name, mode, expression FROM fraud_rules "
    "WHERE mode IN ('shadow', 'enabled') ORDER BY rule_id"
)
# One index probe per distinct value of the chunk (fraud_list_entries_value), then by field.
_LIVE_ENTRIES = (
    "SELECT entry_id, list, field, value FROM fraud_list_entries "
    "WHERE value = ANY(%s) AND removed_at IS NULL ORDER BY entry_id"
)


def live_rules(cur: psycopg2.extensions.cursor) -> list[LiveRule]:
    cur.execute(_LIVE_RULES)
    return [
        LiveRule(rule_id, version, name, mode, compile_rule(expression))
        for rule_id, version, name, mode, expression in cur.fetchall()
    ]


def live_checks(conn: psycopg2.extensions.connection, payments: pd.DataFrame) -> RuleSet:
    """The live rules, and the live list entries naming one of these payments' values."""
    with conn, conn.cursor() as cur:
        rules = live_rules(cur)
        values = {f: set(payments[f].dropna().astype(str).unique()) for f in LIST_FIELDS}
        cur.execute(_LIVE_ENTRIES, (sorted(set().union(*values.values())),))
        entries = [e for e in (ListEntry(*r) for r in cur.fetchall()) if e.value in values[e.field]]
    return RuleSet(rules, entries)


def columns_for(
    payments: pd.DataFrame, features: pd.DataFrame, wanted: set[str]
) -> dict[str, np.ndarray]:
    """The columns the rules read: the payment's own fields, else the named features."""
    out: dict[str, np.ndarray] = {}
    for name in wanted:
        if name in PAYMENT_FIELDS and name in payments.columns:
            kind = object if FIELDS[name] == "text" else float
            out[name] = payments[name].to_numpy(dtype=kind)
        else:
            out[name] = features[name].to_numpy(dtype=float)
    return out


def check(ruleset: RuleSet, payments: pd.DataFrame, features: pd.DataFrame) -> Checks:
    """Evaluate the rules and lists on a chunk (`features`: its named features, same order)."""
    rows = len(payments)
    if not ruleset.rules and not ruleset.entries:
        return Checks.none(rows)
    hits: list[list[dict[str, Any]]] = [[] for _ in range(rows)]
    alerting = np.zeros(rows, dtype=bool)
    blocked = np.zeros(rows, dtype=bool)
    allowed = np.zeros(rows, dtype=bool)
    wanted = set().union(*(r.compiled.fields for r in ruleset.rules))
    columns = columns_for(payments, features, wanted)
    for rule in ruleset.rules:
        matched = rule.compiled.evaluate(columns) if rows else np.zeros(0, dtype=bool)
        if not matched.any():
            continue
        hit = {"kind": "rule", "rule_id": rule.rule_id, "version": rule.version}
        hit |= {"name": rule.name, "mode": rule.mode}
        for i in np.flatnonzero(matched):
            hits[i].append(hit)
        if rule.mode == "enabled":
            alerting |= matched
    for entry in ruleset.entries:
        matched = payments[entry.field].astype(object).to_numpy() == entry.value
        if not matched.any():
            continue
        hit = {"kind": entry.list, "entry_id": entry.entry_id, "field": entry.field}
        if entry.field != "card_token":  # a card is named by its last 4 digits, never its token
            hit["value"] = entry.value
        for i in np.flatnonzero(matched):
            hits[i].append(hit)
        if entry.list == "block":
            blocked |= matched
        else:
            allowed |= matched
    return Checks(hits, blocked | (alerting & ~allowed))
