"""A busy minute in process: the volume one run scores within its minute (an estimate).

An estimate in one process, not the live figure: `capacity.py` (`make bench-capacity`) measures
the volume the live stack sustains from real scheduled runs.

Busy minutes of the demo generator (a population sized for the rate: millions of cards, each
paying as often as a real one) run as the DAG runs them (`minutes.run_minute`) into a scratch
database, after one untimed minute that warms the caches up. Before each minute the payments API
is asked for it once, untimed: producing payments is the provider's work, not the pipeline's
(the generator takes longer to make a busy minute than the pipeline takes to score it). The
history each run reads is only the minutes before it (a fresh database). Airflow's own cost per
run (scheduling, a process per task) does not grow with the payments: `run.py` adds the live
DAG run's p95 at 600 payments/min (`live.py`), which counts that cost plus 600 payments' work
twice over, so the bound is on the safe side.

- `busy_minute_run_s`: the median seconds of a busy minute's run (`busy_minute_payments`
  payments, the median);
- `busy_minute_fits_per_min` (in `run.py`, once the live figure is known): that volume if its
  run, plus the live DAG run's p95, ends within its minute; else None.
"""

from __future__ import annotations

import statistics
from datetime import datetime, timedelta
from typing import Any

import requests

from fraud_devstack.bench.minutes import run_minute, services
from fraud_devstack.bench.scoring import cli_server
from fraud_devstack.bench.storage import scratch_database
from fraud_pipeline.model.artifacts import load_model
from fraud_pipeline.serving.endpoint import EndpointClient

MINUTE_S = 60.0
BUSY = datetime.fromisoformat("2026-03-03T12:00:00+01:00")  # a Tuesday noon in Paris
# The generator's nominal rate that makes a little over 20,000 payments a minute at BUSY.
NOMINAL_FOR_20K = 24_000.0


def prefetch(api_url: str, start: datetime) -> None:
    """Have the payments API make the minute from `start` (it keeps the last window asked)."""
    end = start + timedelta(minutes=1)
    window: dict[str, str | int] = {"start": start.isoformat(), "end": end.isoformat(), "limit": 1}
    response = requests.get(f"{api_url}/transactions", params=window, timeout=300)
    response.raise_for_status()


def run(rate_per_min: float = NOMINAL_FOR_20K, runs: int = 2) -> dict[str, Any]:
    """`runs` busy minutes (after an untimed one): the median run's seconds and payments."""
    minutes = [BUSY + timedelta(minutes=m) for m in range(runs + 1)]
    seconds, payments = [], []
    payments_api = cli_server("serve-payments", "--rate", str(rate_per_min), start_s=300)
    with services(payments_api) as settings, scratch_database() as url:
        model = load_model(settings.artifacts_dir)
        client = EndpointClient.from_settings(settings)
        for start in minutes:
            prefetch(settings.payments_api_url, start)
            timed = run_minute(url, start, model, client, settings)
            if start != minutes[0]:
                seconds.append(timed.whole_s)
                payments.append(timed.loaded)
    if not all(payments):
        raise RuntimeError(f"a busy minute stored no payment ({payments}): the bench is wrong")
    figures = {
        "busy_minute_run_s": statistics.median(seconds),
        "busy_minute_payments": int(statistics.median(payments)),
        "busy_minute_runs": runs,
    }
    print(
        f"  {figures['busy_minute_payments']:,} payments in a minute: "
        f"the run takes {figures['busy_minute_run_s']:.1f} s",
        flush=True,
    )
    return figures


def keeps_up(figures: dict[str, Any], dag_overhead_s: float) -> int | None:
    """The busy minute's volume if its run plus `dag_overhead_s` ends within its minute."""
    if "busy_minute_run_s" not in figures:
        return None
    fits = figures["busy_minute_run_s"] + dag_overhead_s <= MINUTE_S
    return int(figures["busy_minute_payments"]) if fits else None
