"""The pipeline's high-water mark: how far the payments have been landed without a gap.

`loaded_until` is the end of the newest window whose payments are in PostgreSQL, every earlier
one included. It moves in the same transaction as the landing insert (from there on no payment
is lost: validate, transform and load pick up every landed and pending row) and only forward
over a window that starts at or before it, so a gap can never be jumped over. A DAG run fetches
from the mark up to its own interval end, at most `max_span` at a time: downtime of the stack,
the payments API or the scheduler is caught up by the next runs, oldest first.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import psycopg2.extensions

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


def advance(
    cur: psycopg2.extensions.cursor, start: datetime, end: datetime, name: str = NAME
) -> None:
    """[start, end) is landed: move the mark to `end` if that leaves no gap (never backwards)."""
    cur.execute(
        "INSERT INTO pipeline_watermark AS w (name, loaded_until) VALUES (%s, %s) "
        "ON CONFLICT (name) DO UPDATE SET loaded_until = EXCLUDED.loaded_until, updated_at = now() "
        "WHERE w.loaded_until >= %s AND w.loaded_until < EXCLUDED.loaded_until",
        (name, end, start),
    )


def lag(cur: psycopg2.extensions.cursor, now: datetime, name: str = NAME) -> timedelta | None:
    """How far behind the pipeline is: now minus the end of what is loaded (None: no run yet).

    Landed payments still waiting in payments_inbox (not scored yet) hold it back to the
    oldest of them.
    """
    cur.execute(
        "SELECT (SELECT loaded_until FROM pipeline_watermark WHERE name = %s), "
        "(SELECT min(trans_time) FROM payments_inbox)",
        (name,),
    )
    row = cur.fetchone()
    mark, oldest_pending = row if row else (None, None)
    if mark is None:
        return None
    loaded = min(mark, oldest_pending) if oldest_pending is not None else mark
    return max(timedelta(0), now - loaded)
