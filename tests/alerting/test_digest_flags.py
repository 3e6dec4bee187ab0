"""A catch-up digest says, for each payment, what flagged it — the model (with its score), which
enabled rules by name, which block list — in the live alert's words (`report.wording`), and
counts each over the whole digest; sent through a real SMTP server on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import psycopg2.extensions
import pytest

from fraud_devstack.stack.mailcatcher import MailCatcher
from fraud_pipeline import clock
from fraud_pipeline.alerting import digest
from fraud_pipeline.alerting.alerts import SmtpTarget, alert_pending
from fraud_pipeline.config import get_settings
from fraud_pipeline.net import free_port
from fraud_pipeline.storage.upsert import upsert_scored
from fraud_pipeline.wording import case_link, format_percent
from tests.support.factories import scored_payments

RULE = {"kind": "rule", "rule_id": 7, "version": 2, "name": "Big online", "mode": "enabled"}
SHADOW = {"kind": "rule", "rule_id": 8, "version": 1, "name": "Night test", "mode": "shadow"}


@pytest.fixture
def mail(tmp_path: Path) -> Iterator[MailCatcher]:
    catcher = MailCatcher(tmp_path / "mail", port=free_port()).start()
    yield catcher
    catcher.stop()


def test_each_payment_of_a_digest_says_what_flagged_it(
    conn: psycopg2.extensions.connection, mail: MailCatcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALERT_MAX_AGE_MIN", "60")
    get_settings.cache_clear()
    settings = get_settings()
    old = scored_payments(5, start=clock.now() - timedelta(hours=4), seed=3, step_s=600)
    block = {"kind": "block", "entry_id": 3, "field": "merchant", "value": old.merchant[2]}
    old["is_fraud_pred"] = [True, False, False, True, True]
    old["rule_flagged"] = [False, True, True, False, True]
    old["rule_hits"] = [[], [RULE], [block], [SHADOW], [RULE, block]]
    old["card_last4"] = ["1111", "2222", "3333", "4444", "5555"]
    upsert_scored(conn, old)

    sent = alert_pending(conn, settings, SmtpTarget("127.0.0.1", mail.port), old="now")
    get_settings.cache_clear()

    assert sent["frauds_summarised"] == 5 and sent["frauds_alerted"] == 0
    (message,) = mail.messages()
    assert message["X-Fraud-Digest-Id"]
    text = message.get_body(("plain",)).get_content().replace("\r\n", "\n")
    html = message.get_body(("html",)).get_content()
    listed = text.split("Each payment, riskiest first:\n", 1)[1].split("\n\n", 1)[0]
    entries = listed.removeprefix("- ").split("\n- ")
    merchant = f"block list: merchant {old.merchant[2]}"
    rule = "rule “Big online” (v2)"
    expected = ["model", rule, merchant, "model", f"model; {rule}; {merchant}"]
    order = old.fraud_probability.sort_values(ascending=False, kind="stable").index
    assert len(entries) == 5
    for entry, i in zip(entries, order, strict=True):  # the riskiest first, as live alerts
        assert f"card **** **** **** {old.card_last4[i]}" in entry
        assert format_percent(old.fraud_probability[i]) in entry  # the model's score
        assert f"\n  flagged by: {expected[i]}\n" in entry
        assert entry.endswith(f"  case: {case_link(settings.report_url, old.trans_num[i])}")
        assert f"<td>{expected[i]}</td>" in html
    assert "Night test" not in text  # a shadow rule alerts nobody
    counted = text.split("What flagged them:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert counted == ["- model: 3", f"- {merchant}: 2", "- rule “Big online” (v2): 2"]


def test_a_long_digest_lists_the_first_payments_and_sends_to_the_queue_for_the_rest(
    conn: psycopg2.extensions.connection, mail: MailCatcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALERT_MAX_AGE_MIN", "60")
    monkeypatch.setattr(digest, "LISTED", 3)
    get_settings.cache_clear()
    settings = get_settings()
    old = scored_payments(5, start=clock.now() - timedelta(hours=4), seed=4, step_s=600)
    old["is_fraud_pred"] = True
    upsert_scored(conn, old)
    alert_pending(conn, settings, SmtpTarget("127.0.0.1", mail.port), old="now")
    get_settings.cache_clear()
    (message,) = mail.messages()
    text = message.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert f"(the 3 riskiest; 2 more in the queue: {settings.report_url}/review)" in text
    assert text.count("  flagged by: model\n") == 3
    lowest = old.fraud_probability.nsmallest(2)
    assert all(format_percent(p) + "  " not in text for p in lowest)
    assert "- model: 5\n" in text
