"""Late payments (issue 28): a payment that reaches the payments API after its minute was fetched.

The payments API simulator delivers 5% of a past night's 45 minutes late, each by up to the
bound (LATE_PAYMENT_LOOKBACK_MIN, 10 min); the proxy also holds one flagged payment back for
40 minutes, beyond the bound. The runs go on as time passes (the clock is frozen 30 s after each
run's interval, as the scheduler starts them): 15-minute runs over the window, then two more
while the stream is quiet. Both ways of fetching are tried (the DAG's ingest re-reads the
look-back from the high-water mark; a `run-interval` back-fill plans its re-reads per chunk,
`backfill.late_plan`); both then take the one path (`admit`, `score_and_load`): every payment is
stored once and every flagged one alerted once; each late payment is recorded once, the one held
back as beyond the bound (found by the hourly re-check, logged as a warning); the morning summary
waits for the bound past its day's end.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pandas as pd
import psycopg2
import pytest

from fraud_devstack.stack import payments_api
from fraud_pipeline import clock
from fraud_pipeline.ingest.payments import localize
from fraud_pipeline.pipeline import backfill
from fraud_pipeline.pipeline.steps import run_interval
from fraud_pipeline.storage import watermark
from tests.support.reliability import Stack
from tests.support.runs import outcome, select, window_payments
from tests.support.servers import serve_app

LATE_SHARE = 0.05
HELD_BACK = pd.Timedelta(minutes=40)  # beyond the 10-minute bound, within the hour's re-check
HELD_LONGER = pd.Timedelta(hours=3)  # beyond the re-check too: `fraud-pipeline reconcile` finds it
STEP = pd.Timedelta(minutes=15)
TAIL = 2  # runs after the window: the look-back and the re-check reach back into it
STARTED_AFTER = pd.Timedelta(seconds=30)  # a run starts this long after its interval ends


def dag_run(stack: Stack, url: str, start: Any, end: Any, number: int) -> None:
    """One run of the per-minute DAG's tasks, its ingest from the high-water mark."""
    conn = psycopg2.connect(url)
    try:
        run_interval(
            conn,
            start,
            end,
            run_id=f"scheduled__{number}",
            client=stack.client(),
            settings=stack.settings,
            catch_up=True,
        )
    finally:
        conn.close()


def cli_run(stack: Stack, url: str, start: Any, end: Any, number: int) -> None:
    """`fraud-pipeline run-interval --start --end --chunk-minutes 15` for one interval."""
    assert backfill.main(start=start.isoformat(), end=end.isoformat(), chunk_minutes=15) == 0


# Two fetch plans for late payments (not two scoring paths: both store through score_and_load).
FETCH_PLANS: dict[str, Callable[[Stack, str, Any, Any, int], None]] = {
    "DAG runs": dag_run,
    "run-interval": cli_run,
}


def late_server(stack: Stack) -> Any:
    """The simulator with LATE_SHARE of its payments late by up to the bound."""
    bound_s = stack.settings.late_payment_lookback_min * 60
    lateness = payments_api.Lateness(LATE_SHARE, bound_s, seed=stack.seed)
    source = payments_api.generator_source(seed=stack.seed, rate_per_min=stack.rate_per_min)
    return serve_app(payments_api.build_app(source, lateness)), lateness


def quiet_after_and_held(end: pd.Timestamp, held: dict[str, pd.Timestamp]) -> Any:
    """The proxy's page rewrite: nothing after the window (a quiet stream), and each payment of
    `held` only once the clock has reached its release."""
    tz = end.tz

    def rewrite(page: dict[str, Any]) -> dict[str, Any]:
        now = pd.Timestamp(clock.now())
        page["payments"] = [
            p
            for p in page["payments"]
            if pd.Timestamp(p["trans_date_trans_time"]).tz_localize(tz) < end
            and now >= held.get(p["trans_num"], now)
        ]
        return page

    return rewrite


def pick_held(
    stack: Stack, model: Any, lateness: payments_api.Lateness, run: int
) -> tuple[str, Any]:
    """An on-time payment of a run's minutes that the model flags: (trans_num, time)."""
    from fraud_pipeline.ingest.payments import to_payments

    start, _ = stack.window
    payments = to_payments(window_payments(stack))
    flagged = model.predict(model.features(payments)) >= model.threshold
    on_time = lateness.delays(payments["trans_num"]) == 0
    times = payments["trans_time"]
    inside = ((times >= start + run * STEP) & (times < start + (run + 1) * STEP)).to_numpy()
    row = payments[flagged & on_time & inside].iloc[0]
    return str(row["trans_num"]), pd.Timestamp(row["trans_time"])


def expected_late(
    stack: Stack, lateness: payments_api.Lateness, fetched: list[tuple[Any, Any, Any]]
) -> set[str]:
    """The payments the simulator delivered after the first run that fetched their minute."""
    raw = window_payments(stack)
    times = localize(raw["trans_date_trans_time"])
    arrival = times + pd.to_timedelta(lateness.delays(raw["trans_num"]), unit="s")
    late = set()
    for trans_num, when, arrives in zip(raw["trans_num"], times, arrival, strict=True):
        first = next(at for lo, hi, at in fetched if lo <= when < hi)
        if arrives > first:
            late.add(str(trans_num))
    return late


@pytest.mark.parametrize("plan", list(FETCH_PLANS))
def test_late_payments_stored_once_alerted_once_beyond_the_bound_counted(
    plan, stack, model, outcomes, clean_db, caplog
):
    caplog.set_level(logging.INFO)
    run = FETCH_PLANS[plan]
    api, lateness = late_server(stack)
    stack.payments_proxy.upstream = api.url
    start, end = stack.window
    held, held_time = pick_held(stack, model, lateness, run=0)
    longer, longer_time = pick_held(stack, model, lateness, run=1)
    releases = {held: held_time + HELD_BACK, longer: longer_time + HELD_LONGER}
    stack.payments_proxy.inject("rewrite_page", rewrite=quiet_after_and_held(end, releases))
    runs = int((end - start) / STEP) + TAIL
    intervals = [(start + i * STEP, start + (i + 1) * STEP) for i in range(runs)]
    try:
        for number, (lower, upper) in enumerate(intervals):
            with clock.frozen(upper + STARTED_AFTER):
                run(stack, clean_db, lower.to_pydatetime(), upper.to_pydatetime(), number)
        with clock.frozen(end + pd.Timedelta(hours=4)):  # the next morning's reconciliation
            assert backfill.reconcile(clock.business_day(start)) == 1
    finally:
        stack.payments_proxy.clear()
        api.stop()

    rows = select(clean_db, "SELECT trans_num, beyond_bound, late_s FROM late_payments")
    late = {trans_num: beyond for trans_num, beyond, _ in rows}
    fetched = [(lo, hi, hi + STARTED_AFTER) for lo, hi in intervals]
    within = expected_late(stack, lateness, fetched)
    result = outcome(
        f"late payments, up to the bound and beyond it ({plan})",
        stack,
        model,
        clean_db,
        f"{len(within)} late within the bound, 2 beyond (re-check, reconcile): each stored and "
        "alerted once",
        frauds_from_db=True,  # a late payment changes its card's history for the later ones
    )
    outcomes.append(result)
    assert result.ok, (result.expected, result.got)
    assert within, "the simulator delivered no payment late"
    assert late == {**dict.fromkeys(within, False), held: True, longer: True}, sorted(
        set(late) ^ (within | {held, longer})
    )
    lateness_s = {t: s for t, _, s in rows}
    assert lateness_s[held] >= HELD_BACK.total_seconds()
    assert lateness_s[longer] >= HELD_LONGER.total_seconds()
    alerted = select(clean_db, "SELECT trans_num FROM payments_scored WHERE alerted_at IS NOT NULL")
    assert {(held,), (longer,)} <= set(alerted)  # flagged: alerted once, though beyond the bound
    said = "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)
    assert "1 payments arrived later than the late-payment bound" in said, said


@pytest.mark.clock
def test_the_summary_waits_for_the_bound_past_its_day(conn):
    """A day is complete for the morning summary and the monitor only once the runs' look-back
    has re-read its last minutes: the mark LATE_PAYMENT_LOOKBACK_MIN past midnight."""
    day = clock.yesterday()
    first, last = clock.day_bounds(day)
    bound = timedelta(minutes=10)
    with conn, conn.cursor() as cur:
        watermark.advance(cur, first, last + timedelta(minutes=4))
        waits = watermark.day_incomplete(cur, day, late_bound=bound)
        assert waits and "late payments of the day's last minutes may still arrive" in waits
        assert watermark.day_incomplete(cur, day) is None  # without the bound: loaded
        watermark.advance(cur, last, last + bound)
        assert watermark.day_incomplete(cur, day, late_bound=bound) is None


def test_the_look_back_keeps_only_keyed_payments_not_seen_before(conn):
    """A look-back keeps a payment with a key that is neither stored, waiting nor quarantined;
    a non-object or a payment without trans_num (judged, quarantined, when its own window was
    fetched) and a quarantined one are not judged again at every look-back, and never raise:
    a run re-reading them stays green (the hostile API; tests/airflow's poison-row runs)."""
    from fraud_pipeline.pipeline.steps import not_stored

    with conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO payments_quarantine (run_id, trans_num, reason, payload, payload_hash) "
            "VALUES ('r', 't-bad', 'street: expected text, got list', '{}', 'h')"
        )
    raw = pd.DataFrame(
        {"trans_num": ["t-1", None, float("nan"), "", "t-bad"], "amt": [1.0, 2.0, 3.0, 4.0, 5.0]}
    )
    assert not_stored(conn, raw)["trans_num"].tolist() == ["t-1"]
