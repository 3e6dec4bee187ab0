"""The Rules page: leads write rules and block/allow lists, backtest, shadow and enable them.

Layout only: the rules, their life cycle, backtests, lists and measures are
`fraud_pipeline.rules` (the same functions as `fraud-pipeline rules ...`), written as the database
role `fraud_report_lead`, each change audited under the signed-in lead's name. Listed for leads
and admins only (`users.may(role, "rules")`); any other role reaching it is refused.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pandas as pd
import psycopg2
import streamlit as st

from fraud_pipeline import clock
from fraud_pipeline.rules import backtest, store
from fraud_pipeline.rules.engine import LIST_FIELDS, LISTS
from fraud_pipeline.rules.language import FIELDS, RuleError
from fraud_pipeline.security import users

MEASURE_DAYS = 30
MODE_BUTTONS = {"shadow": "Shadow", "enabled": "Enable", "disabled": "Disable", "draft": "Draft"}


def _user() -> str:
    return str(st.session_state.get("user") or "")


def _change(what: str, change: Any) -> None:
    """Run one change in one transaction as the lead role; say what happened, or why not."""
    conn = psycopg2.connect(store.lead_database_url())
    try:
        with conn, conn.cursor() as cur:
            done = change(cur)
    except (RuleError, store.RuleChangeError, psycopg2.Error) as error:
        st.session_state["rules_error"] = f"{what}: {str(error).splitlines()[0]}"
    else:
        st.session_state["rules_done"] = done
    finally:
        conn.close()


def _read(read: Any) -> Any:
    conn = psycopg2.connect(store.lead_database_url())
    try:
        with conn, conn.cursor() as cur:
            return read(cur)
    finally:
        conn.close()


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def write_rule() -> None:
    with st.form("new_rule", clear_on_submit=False):
        st.subheader("Write a rule")
        name = st.text_input("Name", key="rule_name")
        expression = st.text_area(
            "Rule",
            key="rule_expression",
            placeholder='amt > 800 and category == "shopping_net" and card_count_30d < 3',
        )
        description = st.text_input("What it is for", key="rule_description")
        if st.form_submit_button("Save as draft"):
            _change(
                "Not saved",
                lambda cur: "Rule “{}” saved as draft (v{}).".format(
                    *_created(store.create(cur, name, expression, _user(), description, "report"))
                ),
            )
            st.rerun()
    with st.expander("Fields a rule may read"):
        st.dataframe(
            pd.DataFrame(sorted(FIELDS.items()), columns=["Field", "Type"]), hide_index=True
        )
        st.caption(
            "Operators: and, or, not, < <= > >= == !=, in [..], not in [..], + - * /, ( ). "
            'Texts in quotes ("shopping_net"); numbers as 800 or 0.5.'
        )


def _created(rule: store.Rule) -> tuple[str, int]:
    return rule.name, rule.version


def rules_table(rules: list[store.Rule], measured: dict[int, store.Measured]) -> None:
    rows = []
    for rule in rules:
        m = measured.get(rule.rule_id)
        rows.append(
            {
                "Rule": rule.name,
                "Version": rule.version,
                "Mode": rule.mode,
                "Expression": rule.expression,
                f"Hits ({MEASURE_DAYS} d)": m.hits if m else 0,
                "Alerted": m.alerted if m else 0,
                "Confirmed": m.confirmed if m else 0,
                "False alarms": m.false_alarms if m else 0,
                "Precision (verdicts)": _percent(m.precision if m else None),
                "Changed by": rule.updated_by,
            }
        )
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="rules_table")


def one_rule(rule: store.Rule) -> None:
    st.markdown(f"**{rule.name}** · v{rule.version} · {rule.mode} · `{rule.expression}`")
    days_column, run_column = st.columns([1, 3])
    days = int(days_column.number_input("Days", 1, backtest.MAX_DAYS, 7, key="backtest_days"))
    if run_column.button("Backtest", key="backtest"):
        conn = psycopg2.connect(store.lead_database_url())
        try:
            backtest.run(conn, rule.rule_id, days, _user(), "report")
        except (RuleError, store.RuleChangeError, psycopg2.Error) as error:
            st.error(f"Backtest failed: {str(error).splitlines()[0]}")
            return
        finally:
            conn.close()
        st.session_state["rules_done"] = f"Backtest of “{rule.name}” v{rule.version} stored."
    figures = _read(lambda cur: store.last_backtest(cur, rule))
    if figures:
        show_backtest(figures)
    buttons = st.columns(len(MODE_BUTTONS))
    for column, (mode, label) in zip(buttons, MODE_BUTTONS.items(), strict=True):
        if mode in store.NEXT[rule.mode] and column.button(label, key=f"mode-{mode}"):
            _change(
                f"Not changed to {mode}",
                lambda cur, mode=mode: "Rule “{}” is now {}.".format(
                    *_moded(store.set_mode(cur, rule.rule_id, mode, _user(), "report"))
                ),
            )
            st.rerun()
    with st.form("edit_rule"):
        expression = st.text_area("New version", rule.expression, key="edit_expression")
        if st.form_submit_button("Save new version (back to draft)"):
            _change(
                "Not saved",
                lambda cur: "Rule “{}” v{} saved as draft.".format(
                    *_created(store.edit(cur, rule.rule_id, expression, _user(), None, "report"))
                ),
            )
            st.rerun()


def _moded(rule: store.Rule) -> tuple[str, str]:
    return rule.name, rule.mode


def show_backtest(figures: dict[str, Any]) -> None:
    st.markdown(f"Backtest over {figures['days']} days ({figures['payments']:,} payments):")
    hits, per_day, precision, recall, overlap = st.columns(5)
    hits.metric("Hits", f"{figures['hits']:,}")
    per_day.metric("Alerts per day", f"{figures['alerts_per_day']:,}")
    verdicts, labels = figures["verdicts"], figures["labels"]
    precision.metric(
        "Precision (verdicts)",
        _percent(verdicts["precision"]),
        help=f"labels: {_percent(labels['precision'])}",
    )
    recall.metric(
        "Recall (verdicts)",
        _percent(verdicts["recall"]),
        help=f"labels: {_percent(labels['recall'])}",
    )
    overlap.metric(
        "Also alerted by the model",
        f"{figures['model']['both']:,}",
        help=f"{figures['model']['rule_only']:,} the model did not alert",
    )
    if figures["hits_per_day"]:
        st.bar_chart(pd.Series(figures["hits_per_day"], name="hits"), height=160)


def lists_section() -> None:
    st.subheader("Block and allow lists")
    st.caption(
        "A block-listed merchant, card or category is alerted whatever the model says. An "
        "allow-listed one is never alerted by a rule; the model's own alerts still go out."
    )
    with st.form("add_entry", clear_on_submit=True):
        which, field, value, note = st.columns([1, 1, 2, 2])
        list_name = which.selectbox("List", LISTS, key="entry_list")
        chosen = field.selectbox("Field", LIST_FIELDS, key="entry_field")
        text = value.text_input("Value (a card by its token)", key="entry_value")
        why = note.text_input("Note", key="entry_note")
        if st.form_submit_button("Add to list"):
            _change(
                "Not added",
                lambda cur: (
                    f"{chosen} {text} on the {list_name} list "
                    f"(entry {store.add_entry(cur, list_name, chosen, text, _user(), why, 'report')})."
                ),
            )
            st.rerun()
    entries = _read(store.entries)
    if not entries:
        st.caption("No entries.")
        return
    for entry in entries:
        shown = entry.value if entry.field != "card_token" else entry.value[:12] + "…"
        line, action = st.columns([5, 1])
        line.markdown(
            f"**{entry.list}** · {entry.field} `{shown}` · {entry.added_by}, "
            f"{entry.added_at:%Y-%m-%d} {entry.note}"
        )
        if action.button("Remove", key=f"remove-{entry.entry_id}"):
            _change(
                "Not removed",
                lambda cur, entry_id=entry.entry_id: (
                    store.remove_entry(cur, entry_id, _user(), "report")
                    or f"Entry {entry_id} removed."
                ),
            )
            st.rerun()


def render() -> None:
    st.title(":material/rule: Rules")
    if not users.may(st.session_state.get("role"), "rules"):
        st.error("Only leads write rules and lists.")
        return
    if done := st.session_state.pop("rules_done", None):
        st.success(done)
    if error := st.session_state.pop("rules_error", None):
        st.error(error)
    st.caption(
        "A rule is written as draft, backtested on stored payments, put in shadow (evaluated and "
        "recorded, not alerted), then enabled. Every change is audited."
    )
    write_rule()
    since = clock.now() - timedelta(days=MEASURE_DAYS)
    rules, measured = _read(lambda cur: (store.rules(cur), store.measured(cur, since)))
    if rules:
        rules_table(rules, measured)
        names = {rule.name: rule for rule in rules}
        chosen = st.selectbox("Rule", list(names), key="chosen_rule")
        if chosen:
            one_rule(names[chosen])
    lists_section()
