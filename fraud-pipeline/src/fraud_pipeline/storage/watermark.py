"""The pipeline's high-water mark: how far the payments have been landed without a gap.

`loaded_from` is where that gap-free range starts (the first window landed, or earlier once a
back-fill reaching it is done): a day is complete when the range covers it (`day_incomplete`).

`loaded_until` is the end of the newest window whose payments are in PostgreSQL, every earlier
one included. It moves in the same transaction as the landing insert (from there on no payment
is lost: validate, transform and load pick up every landed and pending row) and only forward
over a window that starts at or before it, so a gap can never be jumped over. A DAG run fetches
from the mark up to its own interval end, at most `max_span` at a time: downtime of the stack,
the payments API or the scheduler is caught up by the next runs, oldest first.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pandas as pd
import psycopg2.extensions

from fraud_pipeline import clock

NAME = "fraud_pipeline"


def read(cur: psycopg2.extensions.cursor, name: str = NAME) -> datetime | None:
    """The mark, or None before the first window was landed."""
    cur.execute("SELECT loaded_until FROM pipeline_watermark WHERE name = %s", (name,))
    row = cur.fetchone()
    return row[0] if row else None


def catch_up_window(
    mark: datetime | None, start: datetime, end: datetime, max_span: timedelta
) -> tuple[datetime, datetime]:
    """The window a run for [start, end) fetches: from the mark when it lags, capped.

    No mark (first run) or a mark at or after `start` (the usual next minute, a re-run of an
    older interval, an overlapping run): the run's own interval. A mark before `start` (runs
    were missed): [mark, end), at most `max_span` long, oldest first; the next runs go on from
    where this one stopped.
    """
    if mark is None or mark >= start:
        return start, end
    return mark, min(end, mark + max_span)


def loaded_range(
    cur: psycopg2.extensions.cursor, name: str = NAME
) -> tuple[datetime, datetime] | None:
    """(loaded_from, loaded_until as landed), or None before the first window was landed."""
    cur.execute("SELECT loaded_from, loaded_until FROM pipeline_watermark WHERE name = %s", (name,))
    row = cur.fetchone()
    return None if row is None else (row[0], row[1])


def lookback_start(
    cur: psycopg2.extensions.cursor, start: datetime, lookback: timedelta, name: str = NAME
) -> datetime:
    """Where a run for [start, …) fetches from: `lookback` earlier, to catch late payments.

    Only minutes already landed are re-read (inside [loaded_from, loaded_until], which must
    reach into the look-back): before the first landed window nothing was fetched, so nothing
    there can be late, and re-reading it would be a back-fill nobody asked for.
    """
    row = loaded_range(cur, name)
    if row is None or not lookback:
        return start
    since, until = row
    if since >= start or until <= start - lookback:
        return start
    return max(start - lookback, since)


def recheck_window(
    cur: psycopg2.extensions.cursor,
    start: datetime,
    end: datetime,
    horizon: timedelta,
    lookback: timedelta,
    name: str = NAME,
) -> tuple[datetime, datetime] | None:
    """The slice a run for [start, end) re-reads once more, `horizon` after it was first
    fetched: [start - horizon, end - horizon), inside the landed range and before the run's
    look-back; None when that is empty (horizon not past the look-back, nothing landed there)."""
    if horizon <= lookback:
        return None
    row = loaded_range(cur, name)
    if row is None:
        return None
    lower = max(start - horizon, row[0])
    upper = min(end - horizon, row[1], start - lookback)
    return (lower, upper) if lower < upper else None


def advance(
    cur: psycopg2.extensions.cursor, start: datetime, end: datetime, name: str = NAME
) -> None:
    """[start, end) is landed: the range without a gap grows by it if the two touch.

    The range [loaded_from, loaded_until] only grows, and only over windows that overlap or
    touch it: a window after a gap (or before one) leaves it as it was, so it never vouches
    for payments that were not landed. The first window landed starts the range.
    """
    cur.execute(
        "INSERT INTO pipeline_watermark AS w (name, loaded_from, loaded_until) "
        "VALUES (%s, %s, %s) ON CONFLICT (name) DO UPDATE SET "
        "loaded_from = LEAST(w.loaded_from, EXCLUDED.loaded_from), "
        "loaded_until = GREATEST(w.loaded_until, EXCLUDED.loaded_until), updated_at = now() "
        "WHERE w.loaded_until >= EXCLUDED.loaded_from AND w.loaded_from <= EXCLUDED.loaded_until "
        "AND (EXCLUDED.loaded_from < w.loaded_from OR EXCLUDED.loaded_until > w.loaded_until)",
        (name, start, end),
    )


def loaded_from(cur: psycopg2.extensions.cursor, name: str = NAME) -> datetime | None:
    """Where the gap-free loaded range starts; None before the first window was landed."""
    cur.execute("SELECT loaded_from FROM pipeline_watermark WHERE name = %s", (name,))
    row = cur.fetchone()
    return None if row is None else row[0]


def loaded_until(cur: psycopg2.extensions.cursor, name: str = NAME) -> datetime | None:
    """The end of what is loaded: the mark, held back by payments landed but not loaded yet.

    Landed payments still waiting in payments_landing (not validated) or payments_inbox (not
    scored) hold it back to the oldest of them. None before the first window was landed.
    """
    mark = read(cur, name)
    if mark is None:
        return None
    cur.execute("SELECT min(trans_time) FROM payments_inbox")
    row = cur.fetchone()
    pending = [row[0]] if row and row[0] is not None else []
    cur.execute("SELECT payload->>'trans_time' FROM payments_landing")
    landed = pd.to_datetime(pd.Series([r[0] for r in cur.fetchall()]), utc=True, errors="coerce")
    if landed.notna().any():  # a malformed time is validate's business, not this one's
        pending.append(landed.min().to_pydatetime())
    return min([mark, *pending])


def lag(cur: psycopg2.extensions.cursor, now: datetime, name: str = NAME) -> timedelta | None:
    """How far behind the pipeline is: `now` minus `loaded_until` (None: nothing loaded yet)."""
    loaded = loaded_until(cur, name)
    return None if loaded is None else max(timedelta(0), now - loaded)


def day_incomplete(
    cur: psycopg2.extensions.cursor,
    day: date,
    name: str = NAME,
    late_bound: timedelta = timedelta(0),
) -> str | None:
    """Why `day`'s payments are not all loaded yet, or None when they are.

    Loaded means inside the range landed without a gap and scored (payments still pending hold
    `loaded_until` back): a summary of the day before that would report a day half loaded.
    `late_bound` (LATE_PAYMENT_LOOKBACK_MIN): the range must also reach that far past the day's
    end, so that the runs' look-back has re-read its last minutes for late payments.
    """
    first, last = clock.day_bounds(day)
    until, since = loaded_until(cur, name), loaded_from(cur, name)
    if until is None or since is None:
        return "no payments loaded yet"
    if since > first:
        start = f"{clock.local(since):%Y-%m-%d %H:%M %Z}"
        return f"payments before {start} are not loaded (a back-fill runs?)"
    if until < last:
        return f"payments are loaded until {clock.local(until):%Y-%m-%d %H:%M %Z} only"
    if until < last + late_bound:
        return (
            f"late payments of the day's last minutes may still arrive: loaded until "
            f"{clock.local(until):%H:%M %Z}, waiting for {clock.local(last + late_bound):%H:%M %Z}"
        )
    return None
