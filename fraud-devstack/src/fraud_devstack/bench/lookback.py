"""What catching late payments costs a run: the look-back and the re-check, measured.

The same consecutive minutes of generated payments run as the DAG runs them (ingest from the
high-water mark, then score_and_load; no alert, no shadow) in two scratch
databases: one with LATE_PAYMENT_LOOKBACK_MIN and LATE_PAYMENT_RECHECK_MIN at 0 (no re-read),
one with the settings' values. Minute by minute, in alternating order, so that neither side gets
the warmer machine. Once a run is an hour past the first, each run of the second side re-reads
the look-back (10 minutes of payments, dropped by key as stored already) and the re-check (one
minute): the median of those runs against the same minutes without, and per payment re-read.

    .venv/bin/python -m fraud_devstack.bench.lookback [--rate 600] [--minutes 75]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import datetime, timedelta
from typing import Any

from fraud_devstack.bench.backfill import payments_api
from fraud_devstack.bench.minutes import START, load_minute, services
from fraud_devstack.bench.storage import scratch_database
from fraud_pipeline.config import Settings
from fraud_pipeline.model.artifacts import load_model
from fraud_pipeline.serving.endpoint import EndpointClient


def timed_minute(url: str, start: datetime, settings: Settings, **kwargs: Any) -> tuple[float, int]:
    """One minute's run from the mark, as the DAG's tasks run it: (seconds, payments read
    again by the look-back and the re-check)."""
    began = time.perf_counter()
    summary = load_minute(url, start, settings=settings, catch_up=True, **kwargs)
    return time.perf_counter() - began, summary.ingested.reread


def run(rate_per_min: float = 600, minutes: int = 75) -> dict[str, Any]:
    """`minutes` one-minute runs on both sides; the figures of those past the re-check's hour."""
    with (
        services(payments_api(rate_per_min)) as settings,
        scratch_database() as bare_url,
        scratch_database() as late_url,
    ):
        bare = settings.model_copy(
            update={"late_payment_lookback_min": 0, "late_payment_recheck_min": 0}
        )
        model = load_model(settings.artifacts_dir)
        client = EndpointClient.from_settings(settings)
        sides = {"bare": (bare_url, bare), "late": (late_url, settings)}
        seconds: dict[str, list[float]] = {"bare": [], "late": []}
        fetched: dict[str, list[int]] = {"bare": [], "late": []}
        horizon = max(settings.late_payment_recheck_min, settings.late_payment_lookback_min)
        for minute in range(minutes):
            order = ["bare", "late"] if minute % 2 else ["late", "bare"]
            for name in order:
                url, side = sides[name]
                took, reread_now = timed_minute(
                    url, START + timedelta(minutes=minute), side, model=model, client=client
                )
                if minute > horizon:  # both the look-back and the re-check apply
                    seconds[name].append(took)
                    fetched[name].append(reread_now)
    median = statistics.median
    extra_s = median(seconds["late"]) - median(seconds["bare"])
    reread = median(fetched["late"])
    run_s = {"bare": median(seconds["bare"]), "late": median(seconds["late"])}
    load = os.getloadavg()
    figures: dict[str, Any] = {
        "lookback_rate_per_min": rate_per_min,
        "lookback_runs": len(seconds["late"]),
        "lookback_run_s": run_s,
        "lookback_payments_reread": reread,
        "lookback_extra_s": extra_s,
        "lookback_extra_pct": 100 * extra_s / median(seconds["bare"]),
        "lookback_us_per_reread_payment": 1e6 * extra_s / reread if reread else None,
        "machine_load": load,
    }
    print(
        f"  {rate_per_min:,.0f} payments/min, {len(seconds['late'])} runs each: run "
        f"{run_s['bare']:.2f} s without re-reading, "
        f"{run_s['late']:.2f} s re-reading {reread:,.0f} payments "
        f"(look-back {settings.late_payment_lookback_min} min + re-check): "
        f"{extra_s:+.2f} s ({figures['lookback_extra_pct']:+.0f}%); load average "
        f"{load[0]:.2f}",
        flush=True,
    )
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=600, help="payments per minute")
    parser.add_argument("--minutes", type=int, default=75, help="runs on each side")
    args = parser.parse_args()
    run(args.rate, args.minutes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
