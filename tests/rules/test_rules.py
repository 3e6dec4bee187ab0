"""Rules and lists beside the model (issue 30 item 3), through the one path's `score_and_load`.

A rule is written, backtested (its figures equal direct SQL counts), shadowed (recorded, not
alerted), enabled (the next run's payments are flagged and the alert names it); a block-listed
merchant's payment is alerted with the list named; an allow-listed card is not alerted by a
rule. Real PostgreSQL, real SMTP (the mail catcher), the model in process (no model server: what
is tested is what the rules do beside it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import psycopg2
import pytest

from fraud_devstack.stack.generate import payments_between
from fraud_devstack.stack.mailcatcher import MailCatcher
from fraud_pipeline import clock
from fraud_pipeline.alerting.alerts import SmtpTarget, alert_pending
from fraud_pipeline.ingest.payments import to_payments
from fraud_pipeline.ingest.validate import Validated
from fraud_pipeline.model.artifacts import Model, load_model
from fraud_pipeline.net import free_port
from fraud_pipeline.pipeline import steps
from fraud_pipeline.pipeline.results import BatchId, RunId
from fraud_pipeline.rules import backtest, store
from fraud_pipeline.rules.language import RuleError, compile_rule
from fraud_pipeline.security import audit
from fraud_pipeline.serving.endpoint import ScoreResult

START = pd.Timestamp("2026-03-03 01:00", tz="UTC")
RULE = 'amt > 150 and category in ["shopping_net", "misc_net", "grocery_pos"]'
RULE_SQL = "amt > 150 AND category IN ('shopping_net', 'misc_net', 'grocery_pos')"
LEAD = "lea.lead"


class InProcess:
    def __init__(self, model: Model) -> None:
        self.model = model

    def predict(self, matrix: np.ndarray) -> ScoreResult:
        return ScoreResult(self.model.predict(matrix), self.model.version)


@pytest.fixture(scope="module")
def model() -> Model:
    return load_model()


def run_hour(conn, model: Model, hour: int, seed: int = 7) -> pd.DataFrame:
    """One hour of payments from START + `hour` h, through admit and `score_and_load`."""
    first = START + pd.Timedelta(hours=hour)
    frame = to_payments(payments_between(first, first + pd.Timedelta(hours=1), seed=seed + hour))
    batch = BatchId(f"run__{hour}")
    checked = Validated(good=frame, bad=frame.iloc[:0].assign(reason=""))
    with conn, conn.cursor() as cur:
        steps.admit(cur, checked, RunId(batch), fetched=len(frame), claim_as=batch)
    steps.score_and_load(conn, batch, model, InProcess(model))
    return frame


def rows(conn, query: str, args: tuple = ()) -> list[tuple]:
    with conn, conn.cursor() as cur:
        cur.execute(query, args)
        return cur.fetchall()


def count(conn, where: str, args: tuple = ()) -> int:
    return int(rows(conn, f"SELECT count(*) FROM payments_scored WHERE {where}", args)[0][0])


def send_alerts(conn, tmp_path: Path, now: pd.Timestamp) -> str:
    with (
        clock.frozen(now.to_pydatetime()),
        MailCatcher(tmp_path / "mail", port=free_port()) as mail,
    ):
        alert_pending(conn, target=SmtpTarget("127.0.0.1", mail.port), old="hold")
        return "\n".join(
            str(m.get_body(("plain",)).get_content())
            for m in mail.messages()  # type: ignore[union-attr]
        )


# -- the language -------------------------------------------------------------------------------
def test_the_language_evaluates_column_wise_and_refuses_what_it_cannot_type():
    columns = {
        "amt": np.array([900.0, 50.0, np.nan]),
        "category": np.array(["shopping_net", "shopping_net", "travel"], dtype=object),
        "card_count_30d": np.array([1.0, 10.0, 0.0]),
    }
    rule = compile_rule('amt > 800 and category == "shopping_net" and not card_count_30d >= 3')
    assert rule.evaluate(columns).tolist() == [True, False, False]
    assert rule.fields == {"amt", "category", "card_count_30d"}
    assert compile_rule("amt * 2 - 100 >= 1700 or category not in ['shopping_net']").evaluate(
        columns
    ).tolist() == [True, False, True]
    assert compile_rule("(amt / card_count_30d) < 10").evaluate(columns).tolist() == [
        False,
        True,
        False,
    ]
    for bad, why in [
        ("amt > ", "ends too early"),
        ("amount > 5", "unknown field 'amount'"),
        ('amt == "x"', "compares a number with a text"),
        ("amt + 1", "not a condition"),
        ('category > "a"', "needs numbers"),
        ("amt > 1 and 2", "needs conditions"),
        ("__import__('os')", "unknown field '__import__'"),
        ("amt > 1; drop", "unexpected character ';'"),
        ("amt in [1, 'a']", "a text in a list of numbers"),
    ]:
        with pytest.raises(RuleError, match=why):
            compile_rule(bad)


# -- life cycle: backtest, shadow, enabled ------------------------------------------------------
def test_a_rule_is_backtested_shadowed_enabled_and_flags_the_next_run(conn, model, tmp_path):
    run_hour(conn, model, 0)
    run_hour(conn, model, 1)
    # Verdicts on some of the stored payments (as analysts would give on alerts).
    matching = [
        r[0]
        for r in rows(
            conn,
            f"SELECT trans_num FROM payments_scored WHERE {RULE_SQL} ORDER BY trans_num LIMIT 6",
        )
    ]
    other = [
        r[0]
        for r in rows(
            conn,
            f"SELECT trans_num FROM payments_scored WHERE NOT ({RULE_SQL}) "
            "ORDER BY trans_num LIMIT 3",
        )
    ]
    assert len(matching) == 6 and len(other) == 3
    with conn, conn.cursor() as cur:
        for i, trans_num in enumerate(matching + other):
            verdict = "confirmed_fraud" if i % 3 == 0 else "false_alarm"
            cur.execute(
                "INSERT INTO alert_reviews (trans_num, verdict, analyst) VALUES (%s, %s, 'ana')",
                (trans_num, verdict),
            )
        rule = store.create(cur, "big online", RULE, LEAD, "large online and grocery", "test")
    with pytest.raises(store.RuleChangeError, match="no backtest"), conn, conn.cursor() as cur:
        store.set_mode(cur, rule.rule_id, "shadow", LEAD)
    with pytest.raises(store.RuleChangeError, match="may go to"), conn, conn.cursor() as cur:
        store.set_mode(cur, "big online", "enabled", LEAD)

    now = START + pd.Timedelta(hours=2)
    with clock.frozen(now.to_pydatetime()):
        result = backtest.run(conn, "big online", 1, LEAD, "test")
    window = (now - pd.Timedelta(days=1), now)
    in_window = "trans_time >= %s AND trans_time < %s"
    hits = count(conn, f"{in_window} AND {RULE_SQL}", window)
    assert result["hits"] == hits > 0
    assert result["payments"] == count(conn, in_window, window)
    confirmed, false_alarms = (
        count(
            conn,
            f"{in_window} AND {RULE_SQL} AND trans_num IN "
            "(SELECT trans_num FROM v_alert_verdicts WHERE verdict = %s)",
            (*window, verdict),
        )
        for verdict in ("confirmed_fraud", "false_alarm")
    )
    all_confirmed = int(
        rows(conn, "SELECT count(*) FROM v_alert_verdicts WHERE verdict = 'confirmed_fraud'")[0][0]
    )
    assert (result["verdicts"]["confirmed"], result["verdicts"]["false_alarms"]) == (2, 4)
    assert (confirmed, false_alarms) == (2, 4)
    assert result["verdicts"]["precision"] == round(confirmed / (confirmed + false_alarms), 4)
    assert result["verdicts"]["recall"] == round(confirmed / all_confirmed, 4)
    frauds_hit = count(conn, f"{in_window} AND {RULE_SQL} AND is_fraud = 1", window)
    frauds = count(conn, f"{in_window} AND is_fraud = 1", window)
    labelled_hits = count(conn, f"{in_window} AND {RULE_SQL} AND is_fraud IS NOT NULL", window)
    assert result["labels"]["frauds_hit"] == frauds_hit
    assert result["labels"]["precision"] == (round(frauds_hit / labelled_hits, 4))
    assert result["labels"]["recall"] == (round(frauds_hit / frauds, 4) if frauds else None)
    assert result["model"] == {
        "model_alerts": count(conn, f"{in_window} AND is_fraud_pred", window),
        "both": count(conn, f"{in_window} AND {RULE_SQL} AND is_fraud_pred", window),
        "rule_only": count(conn, f"{in_window} AND {RULE_SQL} AND NOT is_fraud_pred", window),
    }
    per_day = rows(
        conn,
        f"SELECT (trans_time AT TIME ZONE %s)::date::text, count(*) FROM payments_scored "
        f"WHERE {in_window} AND {RULE_SQL} GROUP BY 1 ORDER BY 1",
        (str(clock.business_tz()), *window),
    )
    assert result["hits_per_day"] == dict(per_day)

    # Shadow: evaluated and recorded with the next run's payments, never alerted.
    with conn, conn.cursor() as cur:
        store.set_mode(cur, "big online", "shadow", LEAD, "test")
    run_hour(conn, model, 2)
    shadow = "trans_time >= %s AND trans_time < %s"
    hour2 = (START + pd.Timedelta(hours=2), START + pd.Timedelta(hours=3))
    shadowed = count(conn, f"{shadow} AND rule_hits @> %s::jsonb", (*hour2, _hit(rule, "shadow")))
    assert shadowed == count(conn, f"{shadow} AND {RULE_SQL}", hour2) > 0
    assert count(conn, "rule_flagged") == 0
    assert "big online" not in send_alerts(conn, tmp_path / "a", START + pd.Timedelta(hours=3))

    # Enabled: the next run's matching payments are flagged and their alert names the rule.
    with conn, conn.cursor() as cur:
        store.set_mode(cur, "big online", "enabled", LEAD, "test")
    run_hour(conn, model, 3)
    hour3 = (START + pd.Timedelta(hours=3), START + pd.Timedelta(hours=4))
    flagged = count(conn, f"{shadow} AND rule_flagged", hour3)
    assert flagged == count(conn, f"{shadow} AND {RULE_SQL}", hour3) > 0
    assert count(conn, f"{shadow} AND rule_hits @> %s::jsonb", (*hour3, _hit(rule, "enabled")))
    body = send_alerts(conn, tmp_path / "b", START + pd.Timedelta(hours=4))
    assert "flagged by: " in body and "rule “big online” (v1)" in body
    assert count(conn, f"{shadow} AND rule_flagged AND alerted_at IS NULL", hour3) == 0

    # Every change is in the audit trail, and the chain holds.
    with conn, conn.cursor() as cur:
        actions = [e.action for e in reversed(audit.recent(cur)) if e.target.startswith("rule")]
        assert actions == ["rule.create", "rule.backtest", "rule.mode", "rule.mode"]
        assert audit.verify(cur).ok


def _hit(rule: store.Rule, mode: str) -> str:
    import json

    return json.dumps([{"kind": "rule", "rule_id": rule.rule_id, "mode": mode}])


# -- lists ---------------------------------------------------------------------------------------
def test_a_block_listed_merchants_payment_is_alerted_with_the_list_named(conn, model, tmp_path):
    first = START + pd.Timedelta(hours=5)
    upcoming = to_payments(payments_between(first, first + pd.Timedelta(hours=1), seed=12))
    merchant = upcoming["merchant"].value_counts().index[0]
    with conn, conn.cursor() as cur:
        store.add_entry(cur, "block", "merchant", merchant, LEAD, "chargebacks", "test")
    run_hour(conn, model, 5, seed=7)
    assert count(conn, "merchant = %s", (merchant,)) > 0
    assert count(conn, "merchant = %s AND NOT rule_flagged", (merchant,)) == 0
    assert count(conn, "merchant <> %s AND rule_flagged", (merchant,)) == 0
    body = send_alerts(conn, tmp_path, START + pd.Timedelta(hours=6))
    assert f"block list: merchant {merchant}" in body


def test_an_allow_listed_card_is_never_alerted_by_a_rule(conn, model):
    with conn, conn.cursor() as cur:
        everything = store.create(cur, "everything", "amt > 0", LEAD)
    with clock.frozen((START + pd.Timedelta(hours=8)).to_pydatetime()):
        backtest.run(conn, "everything", 1, LEAD)
    with conn, conn.cursor() as cur:
        store.set_mode(cur, everything.rule_id, "shadow", LEAD)
        store.set_mode(cur, everything.rule_id, "enabled", LEAD)
    first = START + pd.Timedelta(hours=8)
    upcoming = to_payments(payments_between(first, first + pd.Timedelta(hours=1), seed=15))
    card = upcoming["card_token"].value_counts().index[0]
    with conn, conn.cursor() as cur:
        store.add_entry(cur, "allow", "card_token", card, LEAD, "VIP")
    run_hour(conn, model, 8)
    assert count(conn, "card_token = %s", (card,)) > 0
    assert count(conn, "card_token = %s AND rule_flagged", (card,)) == 0
    assert count(conn, 'card_token = %s AND rule_hits @> \'[{"kind": "allow"}]\'', (card,)) > 0
    assert count(conn, "card_token <> %s AND NOT rule_flagged", (card,)) == 0
    # The model's decision is its own: the allow list only silences rules.
    assert count(conn, "card_token = %s AND is_fraud_pred IS NULL", (card,)) == 0


def test_lists_refuse_a_card_number_and_keep_removed_entries(conn):
    with (
        pytest.raises(store.RuleChangeError, match="64-character token"),
        conn,
        conn.cursor() as cur,
    ):
        store.add_entry(cur, "block", "card_token", "4111111111111111", LEAD)
    with conn, conn.cursor() as cur:
        entry = store.add_entry(cur, "block", "category", "travel", LEAD)
    with pytest.raises(store.RuleChangeError, match="already"), conn, conn.cursor() as cur:
        store.add_entry(cur, "block", "category", "travel", LEAD)
    with conn, conn.cursor() as cur:
        store.remove_entry(cur, entry, LEAD)
        assert store.entries(cur) == []
        cur.execute("SELECT removed_by FROM fraud_list_entries WHERE entry_id = %s", (entry,))
        assert cur.fetchone() == (LEAD,)


def test_a_backtest_of_a_feature_rule_finds_what_the_pipeline_recorded_in_shadow(conn, model):
    """The backtest rebuilds the features from stored history: the same hits as the pipeline's."""
    text = "card_count_24h >= 3 and amt > 2 * card_sum_24h / (card_count_24h + 1)"
    with conn, conn.cursor() as cur:
        rule = store.create(cur, "burst", text, LEAD)
    now = START + pd.Timedelta(hours=12)
    with clock.frozen(now.to_pydatetime()):
        assert backtest.run(conn, "burst", 1, LEAD)["payments"] == 0
    with conn, conn.cursor() as cur:
        store.set_mode(cur, "burst", "shadow", LEAD)
    run_hour(conn, model, 10)
    run_hour(conn, model, 11)
    recorded = count(conn, "rule_hits @> %s::jsonb", (_hit(rule, "shadow"),))
    with clock.frozen(now.to_pydatetime()):
        result = backtest.figures(conn, text, 1)
    assert result["hits"] == recorded > 0
    assert count(conn, "rule_flagged") == 0  # shadow: recorded, never alerting


def test_only_the_lead_role_writes_rules_and_lists_and_nothing_is_deleted(conn, clean_db):
    from fraud_pipeline.storage import db

    reviewer = psycopg2.connect(db.as_user(clean_db, "fraud_report_reviewer"))
    lead = psycopg2.connect(store.lead_database_url())
    try:
        with (
            pytest.raises(psycopg2.errors.InsufficientPrivilege),
            reviewer,
            reviewer.cursor() as cur,
        ):
            store.create(cur, "sneaky", "amt > 1", "ana")
        with lead, lead.cursor() as cur:
            rule = store.create(cur, "by the lead", "amt > 1", LEAD, "", "report")
            entry = store.add_entry(cur, "block", "merchant", "fraud_X", LEAD)
        for statement in ("DELETE FROM fraud_rules", "DELETE FROM fraud_list_entries"):
            with pytest.raises(psycopg2.errors.InsufficientPrivilege), lead, lead.cursor() as cur:
                cur.execute(statement)
    finally:
        reviewer.close()
        lead.close()
    assert rule.name == "by the lead" and entry > 0
    with conn, conn.cursor() as cur:
        assert [e.actor for e in audit.recent(cur)] == [LEAD, LEAD]
