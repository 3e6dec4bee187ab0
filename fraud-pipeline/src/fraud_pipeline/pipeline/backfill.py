"""`fraud-pipeline run-interval`: the pipeline's steps over a long period, chunk by chunk.

Used to back-fill yesterday and today until now on the first start of a day and for
benchmarks; each chunk is one idempotent run, so an interrupted backfill is simply started
again. Each chunk takes the DAG's own path (`steps.process_interval`): admitted to the inbox
under its own batch, then `steps.score_and_load`.
"""

from __future__ import annotations

import itertools
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from functools import partial
from typing import Any

import pandas as pd

from fraud_pipeline import clock
from fraud_pipeline.alerting.alerts import alert_pending
from fraud_pipeline.alerting.digest import catching_up
from fraud_pipeline.config import Settings, get_settings
from fraud_pipeline.model.artifacts import Model
from fraud_pipeline.pipeline.results import RunId
from fraud_pipeline.pipeline.steps import Connection, process_interval, receive
from fraud_pipeline.registry.models import champion_model
from fraud_pipeline.serving.endpoint import EndpointClient
from fraud_pipeline.storage import watermark
from fraud_pipeline.storage.db import connect


def chunks(start: pd.Timestamp, end: pd.Timestamp, chunk: pd.Timedelta) -> list[tuple[Any, Any]]:
    """[start, end) cut into consecutive intervals of `chunk` (the last may be shorter)."""
    bounds = [*pd.date_range(start, end, freq=chunk), end]
    return [
        (lower.to_pydatetime(), upper.to_pydatetime())
        for lower, upper in itertools.pairwise(bounds)
        if lower < upper
    ]


def backfill(
    start: pd.Timestamp, end: pd.Timestamp, chunk: pd.Timedelta, *, alerts: bool = True
) -> int:
    """Run [start, end) in chunks with progress output; return the number of payments loaded.

    The DAG's runs may have landed windows after `end` meanwhile (the first start of a day:
    its back-fill ends at "now", the DAG's first run may start a minute later); the back-fill
    then also covers the minutes between `end` and them (`hole_after`), so none is left out.
    Live frauds are alerted after each chunk; older ones wait for one catch-up digest at the
    end (`alerting.digest`), also with `alerts=False` (the next alert step sends it then).
    """
    client, conn = EndpointClient.from_settings(), connect()
    model = champion_model(conn)
    settings = get_settings()
    began = time.monotonic()
    try:
        run = partial(_run_chunks, conn, model, client, settings, alerts=alerts, began=began)
        with catching_up(conn):
            loaded = run(chunks(start, end, chunk))
            hole_end = hole_after(conn, end, settings)
            if hole_end is not None:
                print(f"  the DAG's runs landed from after {end:%H:%M:%S} on: back-filling to them")
                loaded += run(chunks(end, hole_end, chunk))
                end = hole_end
        # All of [start, end) is stored: the DAG's runs go on from its end (if no gap is left
        # before it; storage/watermark.py), instead of fetching it again.
        with conn, conn.cursor() as cur:
            watermark.advance(cur, start.to_pydatetime(), end.to_pydatetime())
        if alerts:
            alert_pending(conn, settings, old="now")
    finally:
        conn.close()
    return loaded


def hole_after(conn: Connection, end: pd.Timestamp, settings: Settings) -> pd.Timestamp | None:
    """Where the DAG's landed range is, when it lies just after `end`: what to back-fill too.

    The range started by a DAG run that found no mark begins at that run's interval, anywhere
    before its mark: [end, mark) holds any minutes nobody landed. Only a mark within the DAG's
    catch-up span of `end` is one of those first runs; a back-fill of an older period (e.g.
    `--yesterday` again) leaves today alone.
    """
    with conn, conn.cursor() as cur:
        mark = watermark.read(cur)
    if mark is None:
        return None
    mark_ts = pd.Timestamp(mark).tz_convert(end.tzinfo)
    span = pd.Timedelta(minutes=settings.dag_catchup_max_span_min)
    return mark_ts if end < mark_ts <= end + span else None


def _run_chunks(
    conn: Connection,
    model: Model,
    client: EndpointClient,
    settings: Settings,
    periods: list[tuple[Any, Any]],
    *,
    alerts: bool,
    began: float,
) -> int:
    """Each period fetched, scored and stored in turn; the number of payments loaded.

    The next chunk is fetched and validated (no database: `steps.receive`) while this one is
    scored and stored: the payments API works meanwhile, and validation's Python runs while
    this thread waits for PostgreSQL, the model server or SHAP. At most two chunks are in memory.
    Each chunk re-reads the late-payment look-back before it, and the re-check an hour before
    it, where these can find anything (`late_plan`); new payments there are recorded as late.
    """
    loaded = 0
    plans = late_plan(conn, periods, settings)
    with ThreadPoolExecutor(max_workers=1) as prefetch:
        upcoming = prefetch.submit(receive, *plans[0][:2], settings, plans[0][2]) if plans else None
        for number, (lower, upper) in enumerate(periods):
            assert upcoming is not None
            received = upcoming.result()
            if number + 1 < len(periods):
                fetch_from, until, recheck = plans[number + 1]
                upcoming = prefetch.submit(receive, fetch_from, until, settings, recheck)
            summary = process_interval(
                conn,
                lower,
                upper,
                run_id=RunId(f"backfill__{lower.isoformat()}"),
                model=model,
                client=client,
                settings=settings,
                received=received,
                late_before=lower,
                beyond_before=lower - pd.Timedelta(minutes=settings.late_payment_lookback_min),
            )
            if alerts:
                alert_pending(conn, settings, old="hold")
            came, stored = summary.ingested, summary.loaded
            loaded += stored.loaded
            print(
                f"  {lower:%Y-%m-%d %H:%M} -> {upper:%H:%M}: {stored.loaded:,} scored, "
                f"{stored.frauds} frauds, {came.quarantined + stored.refused} quarantined, "
                f"{came.redelivered} stored already "
                f"({came.conflicts} with different contents: quarantined) "
                f"({time.monotonic() - began:.0f} s)",
                flush=True,
            )
    return loaded


def late_plan(
    conn: Connection, periods: list[tuple[Any, Any]], settings: Settings
) -> list[tuple[Any, Any, tuple[Any, Any] | None]]:
    """Per chunk: (fetch from, fetch until, the re-check slice or None).

    The first chunk re-reads the look-back over the minutes landed before it (as a DAG run);
    later ones over the chunk before when that was fetched less than the bound after its end
    (`lookback_from`). A chunk that ends less than LATE_PAYMENT_RECHECK_MIN ago re-checks the
    landed minutes that long before it, as the DAG's runs do; a back-fill of past days re-reads
    nothing.
    """
    if not periods:
        return []
    lookback = pd.Timedelta(minutes=settings.late_payment_lookback_min)
    horizon = pd.Timedelta(minutes=settings.late_payment_recheck_min)
    plans = []
    with conn, conn.cursor() as cur:
        for number, (lower, upper) in enumerate(periods):
            if number == 0:
                fetch_from = watermark.lookback_start(cur, lower, lookback)
            else:
                fetch_from = lookback_from(lower, lookback, periods[0][0])
            recheck = None
            if pd.Timestamp(clock.now()) < pd.Timestamp(upper) + horizon:
                recheck = watermark.recheck_window(cur, lower, upper, horizon, lookback)
            plans.append((fetch_from, upper, recheck))
    return plans


def lookback_from(lower: Any, lookback: pd.Timedelta, floor: Any) -> Any:
    """Where a back-fill chunk after the first fetches from: `lookback` before it (not before
    the back-fill's start) when the chunk before it was fetched less than `lookback` after its
    end, i.e. it ends less than `lookback` ago: later, every payment late by at most the bound
    was already there. A back-fill of past days re-reads nothing; one that reaches now does."""
    if pd.Timestamp(clock.now()) >= pd.Timestamp(lower) + lookback:
        return lower
    return max(pd.Timestamp(lower) - lookback, pd.Timestamp(floor)).to_pydatetime()


def reconcile(day: date, chunk_minutes: int = 60) -> int:
    """`fraud-pipeline reconcile`: fetch `day` again where it is landed; store what is missing.

    Anything new there arrived later than the runs' look-back and re-check could see (beyond
    LATE_PAYMENT_RECHECK_MIN): stored, scored and alerted (a digest, being old) like any
    payment, recorded in late_payments as beyond the bound and logged. The number found.
    """
    client, conn = EndpointClient.from_settings(), connect()
    settings, model = get_settings(), champion_model(conn)
    first, last = (pd.Timestamp(t) for t in clock.day_bounds(day))
    try:
        with conn, conn.cursor() as cur:
            since, until = watermark.loaded_from(cur), watermark.read(cur)
        if since is None or until is None:
            print(f"reconcile {day}: nothing loaded yet")
            return 0
        lower, upper = max(first, pd.Timestamp(since)), min(last, pd.Timestamp(until))
        found = 0
        with catching_up(conn):
            for start, end in chunks(lower, upper, pd.Timedelta(minutes=chunk_minutes)):
                summary = process_interval(
                    conn,
                    start,
                    end,
                    run_id=RunId(f"reconcile__{start.isoformat()}"),
                    model=model,
                    client=client,
                    settings=settings,
                    late_before=end,
                    beyond_before=end,  # every earlier look-back and re-check missed them
                )
                found += summary.ingested.late
        alert_pending(conn, settings, old="now")
    finally:
        conn.close()
    print(f"reconcile {day}: {lower:%H:%M} -> {upper:%H:%M} fetched again, {found} missing found")
    return found


def main(
    *,
    start: str | None = None,
    end: str | None = None,
    yesterday: bool = False,
    chunk_minutes: int = 60,
    alerts: bool = True,
) -> int:
    """`run-interval`: [start, end) (ISO times with offset), or yesterday's business day."""
    if yesterday:
        lower, upper = (pd.Timestamp(t) for t in clock.day_bounds(clock.yesterday()))
    elif start and end:
        lower, upper = pd.Timestamp(start), pd.Timestamp(end)
    else:
        print("run-interval: give --start and --end, or --yesterday")
        return 2
    if lower.tzinfo is None or upper.tzinfo is None:
        print("run-interval: --start and --end need a UTC offset, e.g. 2026-11-21T00:00+01:00")
        return 2
    print(f"run-interval: {lower.isoformat()} -> {upper.isoformat()}", flush=True)
    loaded = backfill(lower, upper, pd.Timedelta(minutes=chunk_minutes), alerts=alerts)
    print(f"done: {loaded:,} payments scored and stored")
    return 0
