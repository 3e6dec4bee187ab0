"""Writing rules and lists: every change a new version or a stamped row, and an audit row.

Life cycle of a rule: `create` (draft) -> `backtest` (rules.backtest; of its current version)
-> `set_mode(shadow)` (evaluated and recorded, not alerted) -> `set_mode(enabled)` (alerts)
-> `set_mode(disabled)`. `edit` makes a new version and sends the rule back to draft: a changed
rule is backtested and shadowed again before it alerts. The report (a lead's role) and the CLI
call these, inside the caller's transaction, so a change lands with its audit row or not at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import psycopg2.extensions
from psycopg2 import sql

from fraud_pipeline.config import Settings, get_settings
from fraud_pipeline.rules.engine import LIST_FIELDS, LISTS, Mode
from fraud_pipeline.rules.language import compile_rule
from fraud_pipeline.security import audit
from fraud_pipeline.storage import db

LEAD_ROLES: Final = frozenset({"lead", "admin"})
LEAD_ROLE: Final = "fraud_report_lead"  # the database role the report's Rules page writes as
MODES: Final[tuple[Mode, ...]] = ("draft", "shadow", "enabled", "disabled")
# Which mode a rule may move to from which (a backtest of the current version is also needed
# for shadow; shadow is needed for enabled).
NEXT: Final[dict[str, frozenset[str]]] = {
    "draft": frozenset({"shadow", "disabled"}),
    "shadow": frozenset({"enabled", "draft", "disabled"}),
    "enabled": frozenset({"shadow", "disabled"}),
    "disabled": frozenset({"draft"}),
}
RULE_CREATE, RULE_EDIT, RULE_MODE = "rule.create", "rule.edit", "rule.mode"
RULE_BACKTEST = "rule.backtest"
LIST_ADD, LIST_REMOVE = "list.add", "list.remove"
_TOKEN: Final = re.compile(r"[0-9a-f]{64}")


def lead_database_url(settings: Settings | None = None) -> str:
    """LEAD_DATABASE_URL, else the app database as `fraud_report_lead` (trust auth in dev)."""
    settings = settings or get_settings()
    return settings.lead_database_url or db.as_user(db.database_url(settings), LEAD_ROLE)


class RuleChangeError(ValueError):
    """A change the life cycle or the language refuses, in the lead's words."""


@dataclass(frozen=True)
class Rule:
    rule_id: int
    name: str
    version: int
    expression: str
    description: str
    mode: str
    updated_by: str
    updated_at: datetime


_RULE_COLUMNS = sql.SQL(", ").join(
    map(
        sql.Identifier,
        [
            "rule_id",
            "name",
            "version",
            "expression",
            "description",
            "mode",
            "updated_by",
            "updated_at",
        ],
    )
)

# Fixed statements, the rule's columns quoted by psycopg2 in place of {columns}.
_ALL_RULES = sql.SQL("SELECT {columns} FROM fraud_rules ORDER BY rule_id").format(
    columns=_RULE_COLUMNS
)
_ONE_RULE = sql.SQL(
    "SELECT {columns} FROM fraud_rules WHERE name = %s OR rule_id = %s "
    "ORDER BY name = %s DESC LIMIT 1 FOR UPDATE"
).format(columns=_RULE_COLUMNS)
_CREATE = sql.SQL(
    "INSERT INTO fraud_rules (name, expression, description, created_by, updated_by) "
    "VALUES (%s, %s, %s, %s, %s) RETURNING {columns}"
).format(columns=_RULE_COLUMNS)
_EDIT = sql.SQL(
    "UPDATE fraud_rules SET version = version + 1, expression = %s, "
    "description = coalesce(%s, description), mode = 'draft', updated_by = %s, "
    "updated_at = now() WHERE rule_id = %s RETURNING {columns}"
).format(columns=_RULE_COLUMNS)
_SET_MODE = sql.SQL(
    "UPDATE fraud_rules SET mode = %s, updated_by = %s, updated_at = now() "
    "WHERE rule_id = %s RETURNING {columns}"
).format(columns=_RULE_COLUMNS)


def rules(cur: psycopg2.extensions.cursor) -> list[Rule]:
    cur.execute(_ALL_RULES)
    return [Rule(*row) for row in cur.fetchall()]


def rule(cur: psycopg2.extensions.cursor, name_or_id: str | int) -> Rule:
    key = str(name_or_id).strip()
    number = int(key) if key.isdigit() and len(key) <= 18 else None
    cur.execute(
        _ONE_RULE,
        (key, number, key),
    )
    row = cur.fetchone()
    if row is None:
        raise RuleChangeError(f"no rule {key!r}")
    return Rule(*row)


def create(
    cur: psycopg2.extensions.cursor,
    name: str,
    expression: str,
    actor: str,
    description: str = "",
    source: str = "",
) -> Rule:
    """A new rule, in draft; the expression is checked first (RuleError says why not)."""
    compile_rule(expression)
    name = name.strip()
    if not name:
        raise RuleChangeError("a rule needs a name")
    cur.execute("SELECT 1 FROM fraud_rules WHERE name = %s", (name,))
    if cur.fetchone():
        raise RuleChangeError(f"a rule named {name!r} exists already")
    created = _write(cur, _CREATE, (name, expression, description, actor, actor))
    _version(cur, created, actor)
    detail = {"name": name, "version": 1, "expression": expression}
    audit.record(cur, actor, RULE_CREATE, f"rule {created.rule_id}", detail, source)
    return created


def edit(
    cur: psycopg2.extensions.cursor,
    name_or_id: str | int,
    expression: str,
    actor: str,
    description: str | None = None,
    source: str = "",
) -> Rule:
    """A new version of the rule, back in draft (to be backtested and shadowed again)."""
    compile_rule(expression)
    current = rule(cur, name_or_id)
    changed = _write(cur, _EDIT, (expression, description, actor, current.rule_id))
    _version(cur, changed, actor)
    detail = {
        "name": changed.name,
        "version": changed.version,
        "expression": expression,
        "was": current.expression,
        "mode_was": current.mode,
    }
    audit.record(cur, actor, RULE_EDIT, f"rule {changed.rule_id}", detail, source)
    return changed


def set_mode(
    cur: psycopg2.extensions.cursor,
    name_or_id: str | int,
    mode: str,
    actor: str,
    source: str = "",
) -> Rule:
    """Move a rule along its life cycle: shadow needs a backtest of its current version,
    enabled needs shadow first."""
    current = rule(cur, name_or_id)
    if mode not in MODES:
        raise RuleChangeError(f"no mode {mode!r} (one of {', '.join(MODES)})")
    if mode == current.mode:
        return current
    if mode not in NEXT[current.mode]:
        raise RuleChangeError(
            f"rule {current.name!r} is {current.mode}: it may go to "
            f"{' or '.join(sorted(NEXT[current.mode]))}, not {mode}"
        )
    if mode == "shadow" and current.mode == "draft" and last_backtest(cur, current) is None:
        raise RuleChangeError(
            f"rule {current.name!r} v{current.version} has no backtest: run one before shadow"
        )
    changed = _write(cur, _SET_MODE, (mode, actor, current.rule_id))
    _event(cur, changed, actor)
    detail = {"name": changed.name, "version": changed.version, "mode": mode, "was": current.mode}
    audit.record(cur, actor, RULE_MODE, f"rule {changed.rule_id}", detail, source)
    return changed


def _write(cur: psycopg2.extensions.cursor, statement: sql.Composed, args: tuple[Any, ...]) -> Rule:
    cur.execute(statement, args)
    row = cur.fetchone()
    assert row is not None
    return Rule(*row)


def last_backtest(cur: psycopg2.extensions.cursor, current: Rule) -> dict[str, Any] | None:
    cur.execute(
        "SELECT figures FROM fraud_rule_backtests WHERE rule_id = %s AND version = %s "
        "ORDER BY backtest_id DESC LIMIT 1",
        (current.rule_id, current.version),
    )
    row = cur.fetchone()
    return dict(row[0]) if row else None


def _version(cur: psycopg2.extensions.cursor, current: Rule, actor: str) -> None:
    cur.execute(
        "INSERT INTO fraud_rule_versions (rule_id, version, expression, description, created_by)"
        " VALUES (%s, %s, %s, %s, %s)",
        (current.rule_id, current.version, current.expression, current.description, actor),
    )
    _event(cur, current, actor)


def _event(cur: psycopg2.extensions.cursor, current: Rule, actor: str) -> None:
    cur.execute(
        "INSERT INTO fraud_rule_events (rule_id, version, mode, actor) VALUES (%s, %s, %s, %s)",
        (current.rule_id, current.version, current.mode, actor),
    )


# -- lists ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Entry:
    entry_id: int
    list: str
    field: str
    value: str
    note: str
    added_by: str
    added_at: datetime


def entries(cur: psycopg2.extensions.cursor) -> list[Entry]:
    cur.execute(
        "SELECT entry_id, list, field, value, note, added_by, added_at FROM fraud_list_entries "
        "WHERE removed_at IS NULL ORDER BY list, field, value"
    )
    return [Entry(*row) for row in cur.fetchall()]


def add_entry(
    cur: psycopg2.extensions.cursor,
    list_name: str,
    field: str,
    value: str,
    actor: str,
    note: str = "",
    source: str = "",
) -> int:
    """A merchant, card token or category on the block or allow list (takes effect at the
    next chunk scored). A card is listed by its token (`ingest.cards.card_token`)."""
    if list_name not in LISTS:
        raise RuleChangeError(f"no list {list_name!r} (block or allow)")
    if field not in LIST_FIELDS:
        raise RuleChangeError(f"lists hold {', '.join(LIST_FIELDS)}, not {field!r}")
    value = value.strip()
    if field == "card_token" and not _TOKEN.fullmatch(value):
        raise RuleChangeError("a card is listed by its 64-character token, never its number")
    if not value:
        raise RuleChangeError("an entry needs a value")
    cur.execute(
        "INSERT INTO fraud_list_entries (list, field, value, note, added_by) "
        "VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING entry_id",
        (list_name, field, value, note, actor),
    )
    row = cur.fetchone()
    if row is None:
        raise RuleChangeError(f"{field} {value!r} is on the {list_name} list already")
    detail = {"list": list_name, "field": field, "value": value, "note": note}
    audit.record(cur, actor, LIST_ADD, f"list entry {row[0]}", detail, source)
    return int(row[0])


def remove_entry(
    cur: psycopg2.extensions.cursor, entry_id: int, actor: str, source: str = ""
) -> None:
    cur.execute(
        "UPDATE fraud_list_entries SET removed_at = now(), removed_by = %s "
        "WHERE entry_id = %s AND removed_at IS NULL RETURNING list, field, value",
        (actor, entry_id),
    )
    row = cur.fetchone()
    if row is None:
        raise RuleChangeError(f"no list entry {entry_id} in force")
    detail = {"list": row[0], "field": row[1], "value": row[2]}
    audit.record(cur, actor, LIST_REMOVE, f"list entry {entry_id}", detail, source)


# -- measured on verdicts -------------------------------------------------------------------------
@dataclass(frozen=True)
class Measured:
    """One rule over the last days: its hits (shadow ones too), and the verdicts on them."""

    rule_id: int
    hits: int
    alerted: int
    confirmed: int
    false_alarms: int

    @property
    def precision(self) -> float | None:
        reviewed = self.confirmed + self.false_alarms
        return self.confirmed / reviewed if reviewed else None


_MEASURED = """
SELECT (h ->> 'rule_id')::bigint, count(*), count(*) FILTER (WHERE p.alerted_at IS NOT NULL),
       count(*) FILTER (WHERE v.verdict = 'confirmed_fraud'),
       count(*) FILTER (WHERE v.verdict = 'false_alarm')
FROM payments_scored p
CROSS JOIN LATERAL jsonb_array_elements(p.rule_hits) h
LEFT JOIN v_alert_verdicts v ON v.trans_num = p.trans_num
WHERE p.trans_time >= %s AND p.rule_hits <> '[]' AND h ->> 'kind' = 'rule'
GROUP BY 1 ORDER BY 1
"""


def measured(cur: psycopg2.extensions.cursor, since: datetime) -> dict[int, Measured]:
    """Per rule, since `since`: hits, alerted, and the analysts' verdicts (precision)."""
    cur.execute(_MEASURED, (since,))
    return {row[0]: Measured(*row) for row in cur.fetchall()}
