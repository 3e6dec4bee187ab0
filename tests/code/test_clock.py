"""The business calendar (fraud_pipeline.clock): DST days, yesterday, FRAUD_NOW, another zone."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest

from fraud_devstack.stack import local_stack
from fraud_pipeline import cli, clock
from fraud_pipeline.config import get_settings
from fraud_pipeline.pipeline import backfill

pytestmark = pytest.mark.clock


@pytest.fixture
def business_tz(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The tests below speak Paris: pin it, whatever the environment says."""
    monkeypatch.setenv("BUSINESS_TZ", "Europe/Paris")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _hours(day: date) -> float:
    return clock.elapsed(*clock.day_bounds(day)) / timedelta(hours=1)


@pytest.mark.usefixtures("business_tz")
@pytest.mark.parametrize(
    ("day", "hours", "start", "end"),
    [
        ("2026-03-29", 23, "2026-03-28T23:00:00+00:00", "2026-03-29T22:00:00+00:00"),
        ("2026-10-25", 25, "2026-10-24T22:00:00+00:00", "2026-10-25T23:00:00+00:00"),
        ("2026-06-15", 24, "2026-06-14T22:00:00+00:00", "2026-06-15T22:00:00+00:00"),
        ("2026-01-10", 24, "2026-01-09T23:00:00+00:00", "2026-01-10T23:00:00+00:00"),
    ],
    ids=["spring-forward", "fall-back", "summer", "winter"],
)
def test_a_day_runs_from_local_midnight_to_the_next(day, hours, start, end):
    lower, upper = clock.day_bounds(date.fromisoformat(day))
    assert lower.astimezone(UTC).isoformat() == start and upper.astimezone(UTC).isoformat() == end
    assert (lower.hour, lower.minute, upper.hour, upper.minute) == (0, 0, 0, 0)
    assert _hours(date.fromisoformat(day)) == hours
    assert str(lower.tzinfo) == str(upper.tzinfo) == "Europe/Paris"


@pytest.mark.usefixtures("business_tz")
@pytest.mark.parametrize(
    ("now", "today", "yesterday", "hours"),
    [
        ("2026-03-30T09:00:00+02:00", "2026-03-30", "2026-03-29", 23),  # after spring forward
        ("2026-10-26T00:10:00+01:00", "2026-10-26", "2026-10-25", 25),  # after fall back
        ("2026-01-01T00:30:00+01:00", "2026-01-01", "2025-12-31", 24),  # still 2025 in UTC
        ("2025-12-31T23:30:00Z", "2026-01-01", "2025-12-31", 24),  # the same instant
        ("2026-11-29T22:59:59Z", "2026-11-29", "2026-11-28", 24),  # Sunday 23:59:59 Paris
        ("2026-11-29T23:00:00Z", "2026-11-30", "2026-11-29", 24),  # Monday 00:00 Paris
    ],
)
def test_today_and_yesterday_follow_the_business_calendar(now, today, yesterday, hours):
    with clock.frozen(now) as frozen_at:
        assert clock.now() == frozen_at and str(clock.now().tzinfo) == "Europe/Paris"
        assert clock.today() == date.fromisoformat(today)
        assert clock.yesterday() == date.fromisoformat(yesterday)
        assert _hours(clock.yesterday()) == hours


@pytest.mark.usefixtures("business_tz")
def test_business_day_of_an_instant_is_the_local_date():
    assert clock.business_day(datetime(2026, 1, 9, 23, 30, tzinfo=UTC)) == date(2026, 1, 10)
    assert clock.business_day(datetime(2026, 1, 9, 22, 59, tzinfo=UTC)) == date(2026, 1, 9)
    with pytest.raises(ValueError, match="naive"):
        clock.business_day(datetime(2026, 1, 9, 23, 30))


def test_frozen_restores_the_environment_and_refuses_naive_times(monkeypatch):
    monkeypatch.delenv(clock.FRAUD_NOW, raising=False)
    with clock.frozen("2026-03-29T12:00:00+02:00"):
        assert os.environ[clock.FRAUD_NOW] == "2026-03-29T12:00:00+02:00"
        with clock.frozen(datetime(2026, 10, 25, 12, tzinfo=UTC)):
            assert clock.now().astimezone(UTC) == datetime(2026, 10, 25, 12, tzinfo=UTC)
        assert clock.now().isoformat().startswith("2026-03-29T12:00:00")
    assert clock.FRAUD_NOW not in os.environ
    real = datetime.now(UTC)
    assert abs(clock.now() - real) < timedelta(seconds=5)
    with pytest.raises(ValueError, match="UTC offset"), clock.frozen("2026-03-29T12:00:00"):
        pass
    monkeypatch.setenv(clock.FRAUD_NOW, "2026-03-29 12:00")
    with pytest.raises(ValueError, match="FRAUD_NOW"):
        clock.now()


@pytest.mark.usefixtures("business_tz")
def test_fraud_now_freezes_the_clock_of_a_subprocess():
    code = (
        "from fraud_pipeline import clock; "
        "print(clock.now().isoformat(), *(b.isoformat() for b in clock.day_bounds(clock.yesterday())))"
    )
    env = {**os.environ, "FRAUD_NOW": "2026-03-30T07:00:00Z", "BUSINESS_TZ": "Europe/Paris"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == [
        "2026-03-30T09:00:00+02:00",
        "2026-03-29T00:00:00+01:00",
        "2026-03-30T00:00:00+02:00",
    ]


@pytest.mark.usefixtures("business_tz")
def test_run_interval_yesterday_is_the_23_hour_day_not_47(monkeypatch, capsys):
    """`fraud-pipeline run-interval --yesterday` on 2026-03-30: the 2026-03-29 Paris day."""
    calls = []

    def fake_backfill(start, end, chunk, *, alerts=True):
        calls.append((start, end, chunk, alerts))
        return 0

    monkeypatch.setattr(backfill, "backfill", fake_backfill)
    with clock.frozen("2026-03-30T09:00:00+02:00"):
        assert cli.main(["run-interval", "--yesterday", "--no-alerts"]) == 0
    ((start, end, chunk, alerts),) = calls
    assert start == pd.Timestamp("2026-03-29T00:00:00+01:00")
    assert end == pd.Timestamp("2026-03-30T00:00:00+02:00")
    assert end - start == pd.Timedelta(hours=23) and chunk == pd.Timedelta(hours=1)
    assert alerts is False
    assert "2026-03-29T00:00:00+01:00 -> 2026-03-30T00:00:00+02:00" in capsys.readouterr().out
    assert backfill.main(start="2026-03-29T00:00", end="2026-03-30T00:00") == 2  # no offset


@pytest.mark.usefixtures("business_tz")
@pytest.mark.parametrize(
    ("now", "hours", "start"),
    [
        ("2026-03-30T09:00:00+02:00", 24, "2026-03-29T00:00:00+01:00"),  # yesterday: 23 h
        ("2026-03-30T09:00:00+02:00", 30, "2026-03-29T00:00:00+01:00"),
        ("2026-03-30T09:00:00+02:00", 1, "2026-03-29T23:00:00+02:00"),
        ("2026-03-29T09:00:00+02:00", 24, "2026-03-28T00:00:00+01:00"),  # today: 23 h
        ("2026-10-26T09:00:00+01:00", 24, "2026-10-25T00:00:00+02:00"),  # yesterday: 25 h, all
        ("2026-10-26T09:00:00+01:00", 2, "2026-10-25T22:00:00+01:00"),
        # Before 07:00 the morning summary's latest slot (07:00 yesterday) reports the day before
        # yesterday, and before 06:30 the monitor's does too: the back-fill starts there.
        ("2026-10-25T02:30:00+01:00", 24, "2026-10-23T00:00:00+02:00"),  # the repeated hour
        ("2026-03-30T00:00:30+02:00", 24, "2026-03-28T00:00:00+01:00"),  # just after midnight
        ("2026-11-29T06:45:00+01:00", 24, "2026-11-27T00:00:00+01:00"),  # monitor's slot passed
        ("2026-11-29T07:00:30+01:00", 24, "2026-11-28T00:00:00+01:00"),  # both slots passed
        ("2026-03-30T00:00:30+02:00", 2, "2026-03-29T22:00:00+02:00"),  # short: yesterday's end
    ],
)
def test_the_first_start_backfills_yesterday_and_today_until_now(now, hours, start):
    """Issue #13: today's payments before the first start are scored too, not only yesterday's."""
    with clock.frozen(now) as frozen_now:
        lower, upper = local_stack.backfill_window(hours)
        today_start, _ = clock.day_bounds(clock.today())
    assert lower.isoformat() == start
    assert upper == frozen_now and clock.elapsed(upper, frozen_now) == timedelta(0)
    assert lower < today_start < upper  # today from its midnight, yesterday before it
    if hours >= 24:  # whole days, whatever their length, yesterday at least
        assert lower <= clock.day_bounds(clock.business_day(today_start) - timedelta(days=1))[0]
        assert lower == clock.day_start(clock.business_day(lower))


@pytest.mark.parametrize(
    ("now", "hours", "history_days", "start"),
    [
        ("2026-03-30T09:00:00+02:00", 24, 7, "2026-03-22T00:00:00+01:00"),  # across spring forward
        ("2026-11-01T12:00:00+01:00", 24, 7, "2026-10-24T00:00:00+02:00"),  # across fall back
        ("2026-11-29T06:45:00+01:00", 24, 1, "2026-11-26T00:00:00+01:00"),  # monitor's slot ahead
        ("2027-01-01T00:10:00+01:00", 24, 3, "2026-12-27T00:00:00+01:00"),  # across New Year
        ("2026-11-29T12:00:00+01:00", 1, 1, "2026-11-27T23:00:00+01:00"),  # an hour of yesterday
    ],
)
def test_the_first_start_also_loads_the_cards_history(now, hours, history_days, start):
    """`history_days` days before the reported hours: the cards' recent payments, so the first
    report is not about brand-new cards only (README, Model)."""
    with clock.frozen(now) as frozen_now:
        without, _ = local_stack.backfill_window(hours)
        lower, upper = local_stack.backfill_window(hours, history_days)
    assert lower.isoformat() == start
    assert (clock.business_day(without) - clock.business_day(lower)).days == history_days
    assert clock.local(lower).time() == clock.local(without).time()
    assert upper == frozen_now


@pytest.mark.parametrize(
    ("zone", "now", "yesterday", "hours"),
    [
        ("America/New_York", "2026-03-09T03:00:00Z", "2026-03-07", 24),  # 23:00 on the 8th in NY
        ("America/New_York", "2026-03-09T12:00:00Z", "2026-03-08", 23),  # US spring forward
        (
            "Pacific/Kiritimati",
            "2026-03-29T11:00:00Z",
            "2026-03-29",
            24,
        ),  # UTC+14: already the 30th
        ("America/Havana", "2026-03-09T12:00:00Z", "2026-03-08", 23),  # midnight does not exist
        ("America/Havana", "2026-11-02T12:00:00Z", "2026-11-01", 25),  # midnight happens twice
    ],
)
def test_another_business_time_zone(monkeypatch, zone, now, yesterday, hours):
    monkeypatch.setenv("BUSINESS_TZ", zone)
    get_settings.cache_clear()
    try:
        with clock.frozen(now):
            assert str(clock.now().tzinfo) == zone
            assert clock.yesterday() == date.fromisoformat(yesterday)
            lower, upper = clock.day_bounds(clock.yesterday())
        assert clock.business_day(lower) == date.fromisoformat(yesterday)
        just = timedelta(microseconds=1)
        assert clock.business_day(upper.astimezone(UTC) - just) == date.fromisoformat(yesterday)
        assert clock.business_day(lower.astimezone(UTC) - just) < date.fromisoformat(yesterday)
        assert clock.business_day(upper) > date.fromisoformat(yesterday)
        assert clock.elapsed(lower, upper) == timedelta(hours=hours)
    finally:
        get_settings.cache_clear()


@pytest.mark.usefixtures("business_tz")
def test_the_morning_summary_is_about_yesterday(conn, tmp_path):
    from fraud_devstack.stack.mailcatcher import MailCatcher
    from fraud_pipeline.alerting.alerts import SmtpTarget
    from fraud_pipeline.net import free_port
    from fraud_pipeline.report.morning_summary import send_daily_summary
    from fraud_pipeline.storage.upsert import upsert_scored
    from tests.support.factories import scored_payments

    with clock.frozen("2026-03-30T00:30:00+02:00"):  # still the 29th in UTC
        first, last = clock.day_bounds(clock.yesterday())
        # 30 payments in the day's first minutes and last minutes, 5 just outside it.
        inside = [
            scored_payments(15, start=first, seed=1, step_s=10),
            scored_payments(15, start=last - timedelta(minutes=5), seed=2, step_s=10),
        ]
        outside = scored_payments(5, start=last, seed=3, step_s=10)
        for frame in (*inside, outside):
            upsert_scored(conn, frame)
        with MailCatcher(tmp_path / "mail", port=free_port()) as mail:
            summary = send_daily_summary(conn, target=SmtpTarget("127.0.0.1", mail.port))
            (message,) = mail.messages()
    assert summary["day"] == "2026-03-29" and summary["payments"] == 30
    assert "Morning report 2026-03-29" in message["Subject"]
