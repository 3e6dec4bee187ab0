"""`fraud-pipeline rules ...` and `lists ...`: the leads' life cycle from the command line."""

from __future__ import annotations

import json

import pandas as pd

from fraud_pipeline import cli, clock
from fraud_pipeline.security import audit, users


def test_a_lead_writes_backtests_shadows_and_enables_a_rule_from_the_cli(conn, capsys):
    with conn, conn.cursor() as cur:
        users.add(cur, "lea.lead", "lead", "test")
        users.add(cur, "ana.analyst", "analyst", "test")
    assert cli.main(["rules", "check", "amt > 800 and category == 'shopping_net'"]) == 0
    assert cli.main(["rules", "check", "amt >> 800"]) == 1
    assert "at position 6" in capsys.readouterr().err
    assert cli.main(["rules", "--by", "ana.analyst", "add", "big", "amt > 800"]) == 1
    assert "not an enabled lead" in capsys.readouterr().err
    assert cli.main(["rules", "--by", "lea.lead", "add", "big", "amt > 800"]) == 0
    assert cli.main(["rules", "--by", "lea.lead", "enable", "big"]) == 1  # draft: not yet
    assert cli.main(["rules", "--by", "lea.lead", "shadow", "big"]) == 1  # no backtest
    capsys.readouterr()
    with clock.frozen(pd.Timestamp("2026-03-03 12:00", tz="UTC").to_pydatetime()):
        assert cli.main(["rules", "--by", "lea.lead", "--days", "3", "backtest", "big"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert (figures["rule"], figures["version"], figures["days"], figures["hits"]) == (
        "big",
        1,
        3,
        0,
    )
    assert cli.main(["rules", "--by", "lea.lead", "shadow", "big"]) == 0
    assert cli.main(["rules", "--by", "lea.lead", "enable", "big"]) == 0
    assert cli.main(["rules", "list"]) == 0
    listed = capsys.readouterr().out
    assert "big" in listed and "enabled" in listed
    assert cli.main(["lists", "--by", "lea.lead", "add", "block", "merchant", "fraud_X"]) == 0
    assert cli.main(["lists", "list"]) == 0
    assert "fraud_X" in capsys.readouterr().out
    with conn, conn.cursor() as cur:
        cur.execute("SELECT mode, version FROM fraud_rules WHERE name = 'big'")
        assert cur.fetchone() == ("enabled", 1)
        trail = [(e.actor, e.action) for e in reversed(audit.recent(cur)) if e.action != "user.add"]
        assert trail == [
            ("lea.lead", "rule.create"),
            ("lea.lead", "rule.backtest"),
            ("lea.lead", "rule.mode"),
            ("lea.lead", "rule.mode"),
            ("lea.lead", "list.add"),
        ]
