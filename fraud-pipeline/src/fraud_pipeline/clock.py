"""The business calendar: the one place that knows what "now", a day and "yesterday" mean.

A business day runs from local midnight to the next local midnight in BUSINESS_TZ
(`get_settings().business_tz`), so it lasts 23, 24 or 25 hours: never add 24 hours to a midnight.
`now()` can be frozen with the environment variable FRAUD_NOW (an ISO instant with its UTC
offset), so that subprocesses (CLI, Airflow tasks, the local stack) see the same time as the
process that froze it; `frozen(...)` does that for a block of code.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from fraud_pipeline.config import get_settings

FRAUD_NOW = "FRAUD_NOW"


def business_tz() -> ZoneInfo:
    """The business time zone, from the settings (its default lives in config.Settings only)."""
    return get_settings().tz


def parse_instant(text: str) -> datetime:
    """An ISO instant that must carry its UTC offset: a bare wall-clock time is ambiguous."""
    instant = datetime.fromisoformat(text.strip())
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{text!r} needs a UTC offset, e.g. 2026-03-29T23:30:00+02:00")
    return instant


def now() -> datetime:
    """The current instant in the business time zone; FRAUD_NOW, when set, freezes it."""
    frozen_at = os.environ.get(FRAUD_NOW)
    if frozen_at:
        try:
            return parse_instant(frozen_at).astimezone(business_tz())
        except ValueError as error:
            raise ValueError(f"{FRAUD_NOW}: {error}") from error
    return datetime.now(business_tz())


@contextmanager
def frozen(instant: datetime | str) -> Iterator[datetime]:
    """Freeze `now()` at `instant` inside the block, in this process and its subprocesses."""
    value = parse_instant(instant) if isinstance(instant, str) else instant
    if value.tzinfo is None:
        raise ValueError("a frozen instant needs a time zone")
    previous = os.environ.get(FRAUD_NOW)
    os.environ[FRAUD_NOW] = value.isoformat()
    try:
        yield value.astimezone(business_tz())
    finally:
        if previous is None:
            os.environ.pop(FRAUD_NOW, None)
        else:
            os.environ[FRAUD_NOW] = previous


def local(instant: datetime) -> datetime:
    """`instant` on the business time zone's wall clock (tz-aware)."""
    if instant.tzinfo is None:
        raise ValueError("a naive datetime is not an instant: give it a time zone")
    return instant.astimezone(business_tz())


def business_day(instant: datetime) -> date:
    """The business day `instant` falls on (00:30 in Paris is still that day, not UTC's)."""
    return local(instant).date()


def today() -> date:
    """The business day of `now()`."""
    return business_day(now())


def yesterday() -> date:
    """The business day before today: the morning report's default day."""
    return today() - timedelta(days=1)


def day_start(day: date) -> datetime:
    """The first instant of `day` in the business time zone (tz-aware).

    The round trip through UTC resolves a midnight that a DST change skips or repeats.
    """
    midnight = datetime.combine(day, time(), tzinfo=business_tz())
    return midnight.astimezone(UTC).astimezone(business_tz())


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """`day` as [start, end): local midnight to the next day's local midnight (23/24/25 h).

    Both carry the business ZoneInfo, and Python subtracts and compares datetimes that share a
    tzinfo by wall clock: use `elapsed` (or pandas) for their true distance.
    """
    return day_start(day), day_start(day + timedelta(days=1))


def elapsed(start: datetime, end: datetime) -> timedelta:
    """The real time from `start` to `end` (23 h across a spring-forward night, not 24)."""
    return end.astimezone(UTC) - start.astimezone(UTC)
