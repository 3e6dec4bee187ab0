"""`fraud-dev bench-capacity` (`make bench-capacity`): the largest per-minute volume the live
stack sustains, every run within its minute.

Real scheduled runs, not an estimate: the local stack starts as `make run` does (`fraud-dev run`,
LocalExecutor, a scratch database, no back-fill) with its payments API replaced by a replay of
pre-generated payments (`serve-payments --source csv --rates ...`), so that the generator is not
what is measured. The replay steps through rising rates, `minutes` minutes each, from a whole
minute after the stack is ready. Each minute is judged once its run had a minute to finish: it is
*within its minute* if its scheduled run succeeded at most 60 s after the minute's end (before the
next run is due, so no backlog builds). A rate is sustained if every one of its minutes is; the
bench stops at the first rate that is not (a backlog spoils the rates after it).

Figures merged into bench/results.json's figures (the rest kept):
- `capacity_live_payments_per_min`: the median payments stored per minute at the largest rate
  sustained (None: not even the first);
- `capacity_live`: per rate, its minutes judged, how many were within, payments per minute and
  the lag (end of minute -> success); the settings, the load average, the date.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg2

from fraud_devstack.bench.live import local_stack
from fraud_devstack.bench.run import RESULTS
from fraud_devstack.bench.scoring import cli_server
from fraud_devstack.bench.storage import scratch_database
from fraud_devstack.stack.airflow_local import AirflowClient
from fraud_devstack.stack.generate import payments_between
from fraud_devstack.stack.local_stack import COMPOSE_SERVICES
from fraud_pipeline.net import free_port

MINUTE_S = 60.0
BUSY = datetime.fromisoformat("2026-03-03T12:00:00+01:00")  # a Tuesday noon in Paris
# The generator's nominal rate that makes a little over 20,000 payments a minute at BUSY.
NOMINAL_FOR_20K = 24_000.0
POOL_MINUTES = 3  # busy minutes generated once and replayed at every rate (~60,000 payments)
JUDGE_AT_S = 2 * MINUTE_S + 5.0  # a minute is judged this long after its start
# The stack without its payments API (the replay stands in), the report or a back-fill.
STACK_SERVICES = [
    s for s in COMPOSE_SERVICES if s not in {"payments-api", "fraud-dashboard", "backfill"}
]


@dataclass(frozen=True)
class Minute:
    """One replayed minute as judged: its rate, its scheduled run, the payments stored for it."""

    rate: float
    start: pd.Timestamp
    state: str | None  # the run's state when judged (None: no run yet)
    lag_s: float | None  # end of the minute -> the run's success (None: not succeeded)
    payments: int

    @property
    def within(self) -> bool:
        return self.state == "success" and self.lag_s is not None and self.lag_s <= MINUTE_S


def schedule(
    anchor: pd.Timestamp, rates: list[float], minutes: int
) -> list[tuple[float, pd.Timestamp]]:
    """(rate, minute start) of every replayed minute, in order (as `stepped_replay_source`)."""
    return [
        (rate, anchor + pd.Timedelta(minutes=k * minutes + m))
        for k, rate in enumerate(rates)
        for m in range(minutes)
    ]


def sustained(judged: list[Minute], rate: float, minutes: int) -> bool:
    """Whether all `minutes` minutes of `rate` were judged and each run was within its minute."""
    at_rate = [m for m in judged if m.rate == rate]
    return len(at_rate) == minutes and all(m.within for m in at_rate)


def largest_sustained(judged: list[Minute], rates: list[float], minutes: int) -> float | None:
    """The highest of the rising `rates` sustained with every lower one sustained too."""
    best = None
    for rate in sorted(rates):
        if not sustained(judged, rate, minutes):
            break
        best = rate
    return best


def figures(judged: list[Minute], rates: list[float], minutes: int) -> dict[str, Any]:
    """The figures merged into the results: the sustained volume and the per-rate detail."""
    per_rate = []
    for rate in rates:
        at_rate = [m for m in judged if m.rate == rate]
        if not at_rate:
            continue
        lags = [m.lag_s for m in at_rate if m.lag_s is not None]
        per_rate.append(
            {
                "rate_per_min": rate,
                "minutes_judged": len(at_rate),
                "minutes_within": sum(m.within for m in at_rate),
                "payments_per_min_median": int(statistics.median(m.payments for m in at_rate)),
                "lag_s_p95": float(np.percentile(lags, 95)) if lags else None,
                "lag_s_max": max(lags) if lags else None,
                "sustained": sustained(judged, rate, minutes),
            }
        )
    best = largest_sustained(judged, rates, minutes)
    volume = next(
        (r["payments_per_min_median"] for r in per_rate if r["rate_per_min"] == best), None
    )
    return {
        "capacity_live_payments_per_min": volume,
        "capacity_live": {"rates": rates, "minutes_per_rate": minutes, "per_rate": per_rate},
    }


def merge(out: Path, new: dict[str, Any], context: dict[str, Any]) -> None:
    """`new` into `out`'s figures (the other figures and fields kept), `context` beside them."""
    results = json.loads(out.read_text()) if out.exists() else {"figures": {}}
    new["capacity_live"].update(context)
    results.setdefault("figures", {}).update(new)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")


def write_pool(path: Path) -> int:
    """`POOL_MINUTES` busy minutes of the generator as a Sparkov CSV: the payments replayed."""
    end = BUSY + timedelta(minutes=POOL_MINUTES)
    pool = payments_between(BUSY, end, seed=42, rate_per_min=NOMINAL_FOR_20K)
    pool.to_csv(path, index=False)
    return len(pool)


def stored_per_minute(url: str, since: pd.Timestamp) -> dict[pd.Timestamp, int]:
    """Payments stored per minute of event time from `since` on."""
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT date_trunc('minute', trans_time), count(*) FROM payments_scored "
            "WHERE trans_time >= %s GROUP BY 1",
            (since.to_pydatetime(),),
        )
        rows = cur.fetchall()
    conn.close()
    return {pd.Timestamp(minute).tz_convert("UTC"): int(n) for minute, n in rows}


def judge(
    client: AirflowClient, url: str, due: list[tuple[float, pd.Timestamp]], anchor: pd.Timestamp
) -> list[Minute]:
    """The `due` minutes as they stand now: their scheduled runs and the payments stored."""
    runs = {
        pd.Timestamp(r["data_interval_start"]).tz_convert("UTC"): r
        for r in client.dag_runs("fraud_pipeline", limit=50)
        if r["run_type"] == "scheduled"
    }
    stored = stored_per_minute(url, anchor)
    judged = []
    for rate, start in due:
        run = runs.get(start)
        state = run["state"] if run else None
        lag = None
        if run and state == "success" and run.get("end_date"):
            end = start + pd.Timedelta(minutes=1)
            lag = (pd.Timestamp(run["end_date"]) - end).total_seconds()
        judged.append(Minute(rate, start, state, lag, stored.get(start, 0)))
    return judged


def say(minute: Minute) -> None:
    lag = f"{minute.lag_s:.1f} s after its minute" if minute.lag_s is not None else "not done"
    mark = "within" if minute.within else "NOT within its minute"
    print(
        f"  {minute.rate:>9,.0f}/min {minute.start:%H:%M}: run {minute.state}, {lag}, "
        f"{minute.payments:,} payments stored: {mark}",
        flush=True,
    )


def measure(rates: list[float], minutes: int, state: Path, url: str) -> list[Minute]:
    """Start the stack and the replay, judge each minute as it falls due, stop at the first miss."""
    pool = state / "pool.csv"
    print(f"  generating the replayed payments ({POOL_MINUTES} busy minutes)", flush=True)
    print(f"  {write_pool(pool):,} payments in {pool}", flush=True)
    payments_port = free_port()
    options = ["--payments-port", str(payments_port), "--only", ",".join(STACK_SERVICES)]
    judged: list[Minute] = []
    with local_stack(url, state, *options) as (_, client):
        anchor = (pd.Timestamp.now(tz="UTC") + pd.Timedelta(seconds=30)).ceil("min")
        replay = ["serve-payments", "--source", "csv", "--csv", str(pool), "--late-share", "0"]
        replay += ["--rates", ",".join(f"{r:g}" for r in rates), "--step-minutes", str(minutes)]
        replay += ["--replay-from", anchor.isoformat()]
        with cli_server(*replay, port=payments_port, start_s=120):
            print(f"  the replay starts at {anchor:%H:%M:%S} UTC", flush=True)
            pending = schedule(anchor, rates, minutes)
            while pending:
                now = pd.Timestamp.now(tz="UTC")
                due = [(r, s) for r, s in pending if now >= s + pd.Timedelta(seconds=JUDGE_AT_S)]
                if not due:
                    time.sleep(5)
                    continue
                for minute in judge(client, url, due, anchor):
                    say(minute)
                    judged.append(minute)
                pending = pending[len(due) :]
                if not all(m.within for m in judged):
                    print("  a run missed its minute: the rates after it are not tried", flush=True)
                    break
    return judged


def main(*, rates: list[float], minutes: int = 10, out: Path | None = None) -> int:
    """Measure at rising `rates` (payments/min), `minutes` each; merge the figures into `out`."""
    rates = sorted(rates)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a request a poll: the minutes matter
    began, load_before = time.monotonic(), os.getloadavg()
    with scratch_database() as url, tempfile.TemporaryDirectory(prefix="bench-capacity-") as state:
        judged = measure(rates, minutes, Path(state), url)
    result = figures(judged, rates, minutes)
    context = {
        "command": " ".join(["fraud-dev bench-capacity", *sys.argv[2:]]),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": round(time.monotonic() - began, 1),
        "load_avg_1m": {"before": load_before[0], "after": os.getloadavg()[0]},
    }
    merge(out or RESULTS, result, context)
    volume = result["capacity_live_payments_per_min"]
    print(
        f"sustained for {minutes} min: "
        + (f"{volume:,} payments/min" if volume is not None else f"none of {rates}")
        + f" (goal >= 60,000); merged into {out or RESULTS}",
        flush=True,
    )
    return 0
