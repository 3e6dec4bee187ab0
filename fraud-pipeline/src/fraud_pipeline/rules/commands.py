"""`fraud-pipeline rules ...` and `fraud-pipeline lists ...`: the leads' commands, over `store`
and `backtest` (the same functions the report's Rules page calls), as the database owner.

The actor recorded in the audit trail is `--by USERNAME` (an enabled lead or admin account of
the report), else `cli:<operating-system user>`.
"""

from __future__ import annotations

import getpass
import json
from datetime import timedelta
from typing import Any

from fraud_pipeline import clock
from fraud_pipeline.rules import backtest, store
from fraud_pipeline.rules.language import FIELDS, compile_rule
from fraud_pipeline.storage import db

MODE_COMMANDS = {"shadow": "shadow", "enable": "enabled", "disable": "disabled", "draft": "draft"}


def actor(cur: Any, by: str | None) -> str:
    if not by:
        return f"cli:{getpass.getuser()}"
    cur.execute("SELECT role FROM app_users WHERE username = %s AND disabled_at IS NULL", (by,))
    row = cur.fetchone()
    if row is None or row[0] not in store.LEAD_ROLES:
        raise store.RuleChangeError(f"{by!r} is not an enabled lead or admin account")
    return by


def rules_main(
    command: str,
    name: str = "",
    expression: str = "",
    *,
    by: str | None = None,
    description: str | None = None,
    days: int = 7,
) -> int:
    if command == "fields":
        for field, kind in sorted(FIELDS.items()):
            print(f"{field:<32} {kind}")
        return 0
    if command == "check":
        compiled = compile_rule(expression)
        print(f"ok: reads {', '.join(sorted(compiled.fields))}")
        return 0
    if command == "backtest":
        with db.transaction() as cur:
            who = actor(cur, by)
        conn = db.connect()
        try:
            result = backtest.run(conn, name, days, who, "cli")
        finally:
            conn.close()
        print(json.dumps(result, indent=2))
        return 0
    with db.transaction() as cur:
        if command == "list":
            since = clock.now() - timedelta(days=days)
            figures = store.measured(cur, since)
            for rule in store.rules(cur):
                m = figures.get(rule.rule_id)
                hits = f"{m.hits} hits, precision {_percent(m.precision)}" if m else "no hits"
                print(
                    f"{rule.rule_id:>4} {rule.name:<30} v{rule.version:<3} {rule.mode:<8} "
                    f"{hits} ({days} d)  {rule.expression}"
                )
            return 0
        who = actor(cur, by)
        if command == "add":
            changed = store.create(cur, name, expression, who, description or "", "cli")
        elif command == "edit":
            changed = store.edit(cur, name, expression, who, description, "cli")
        else:
            changed = store.set_mode(cur, name, MODE_COMMANDS[command], who, "cli")
    print(f"rule {changed.name} v{changed.version}: {changed.mode}")
    return 0


def lists_main(
    command: str,
    list_name: str = "",
    field: str = "",
    value: str = "",
    *,
    entry_id: int = 0,
    note: str = "",
    by: str | None = None,
) -> int:
    with db.transaction() as cur:
        if command == "list":
            for entry in store.entries(cur):
                print(
                    f"{entry.entry_id:>5} {entry.list:<6} {entry.field:<11} {entry.value:<40} "
                    f"{entry.added_by} {entry.added_at:%Y-%m-%d} {entry.note}"
                )
            return 0
        who = actor(cur, by)
        if command == "add":
            entry_id = store.add_entry(cur, list_name, field, value, who, note, "cli")
            print(f"list entry {entry_id}: {field} {value} on the {list_name} list")
        else:
            store.remove_entry(cur, entry_id, who, "cli")
            print(f"list entry {entry_id} removed")
    return 0


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"
