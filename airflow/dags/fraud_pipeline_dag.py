"""
### fraud_pipeline: score every card payment within its minute

Every minute, for the run's data interval, one path (the same functions back-fills,
catch-ups and `run-interval` call, `pipeline/steps.py`):

1. **ingest**: fetch the payments from the payments API (card numbers tokenised at once; from
   the high-water mark when runs were missed, see `storage/watermark.py`; re-reading the last
   LATE_PAYMENT_LOOKBACK_MIN minutes for late payments), land them, validate them: good rows
   wait in `payments_inbox`, bad rows go to `payments_quarantine` with the reason,
   re-deliveries are set aside, late arrivals recorded.
2. **score_and_load**: claim every pending inbox row (this run's and any an earlier run could
   not finish), card history and features (saved transformer), the SageMaker endpoint,
   decisions and reasons (flagged payments only), then upsert into `payments_scored` and delete
   from the inbox in one transaction per chunk. Payments the model refuses are quarantined
   alone; with the endpoint down they wait in the inbox for the retry or the next run.
3. **alert** (one email per run, each fraud exactly once) and, beside it, **shadow_score**:
   while a challenger is registered, it scores the same payments too, for the report's
   comparison (`pipeline/shadow.py`); a challenger failure never fails the run.

Tasks exchange small typed results through XCom (`pipeline/results.py`: run and batch ids,
counts, the stored time range), never payments: the inbox is the durable queue, so nothing is
lost when a task fails and retries, and re-running any task stores and sends nothing twice.
Logic lives in the `fraud_pipeline` package; these tasks only call it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Asset, chain, dag, get_current_context, task
from airflow.timetables.interval import CronDataIntervalTimetable

from fraud_pipeline.config import get_settings

settings = get_settings()
PAYMENTS_SCORED = Asset(
    name="payments_scored", uri="postgres://postgres:5432/fraud_db/public/payments_scored"
)

default_args = {
    "retries": 3,
    "retry_delay": timedelta(seconds=5),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=1),
}


@dag(
    dag_id="fraud_pipeline",
    schedule=CronDataIntervalTimetable("* * * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=settings.dag_catchup,
    max_active_runs=settings.dag_max_active_runs,
    dagrun_timeout=timedelta(minutes=10),
    default_args=default_args,
    tags=["fraud", "near-real-time"],
    doc_md=__doc__,
)
def fraud_pipeline():
    @task(
        doc_md="Fetch the data interval's payments (cards tokenised), land and validate them: "
        "good rows to the inbox, bad rows to payments_quarantine with the reason."
    )
    def ingest() -> dict[str, Any]:
        from fraud_pipeline.pipeline import steps
        from fraud_pipeline.pipeline.airflow_support import db_connection
        from fraud_pipeline.pipeline.results import RunId

        context = get_current_context()
        with db_connection() as conn:
            return steps.ingest(
                conn,
                RunId(context["run_id"]),
                context["data_interval_start"],
                context["data_interval_end"],
                catch_up=True,
            ).to_xcom()

    @task(
        outlets=[PAYMENTS_SCORED],
        doc_md="Claim every pending payment; card history, features, the SageMaker endpoint, "
        "decisions and reasons; upsert into payments_scored and leave the inbox, per chunk.",
    )
    def score_and_load(ingested: dict[str, Any]) -> dict[str, Any]:
        from fraud_pipeline.pipeline import steps
        from fraud_pipeline.pipeline.airflow_support import db_connection, scoring_client
        from fraud_pipeline.pipeline.results import Ingested, batch_for
        from fraud_pipeline.registry.models import champion_model

        run = Ingested.from_xcom(ingested)
        with db_connection() as conn:
            model = champion_model(conn)
            return steps.score_and_load(
                conn, batch_for(run.run_id), model, scoring_client()
            ).to_xcom()

    @task(doc_md="One email for the new frauds; each fraud alerted exactly once.")
    def alert(loaded: dict[str, Any]) -> dict[str, Any]:
        from fraud_pipeline.pipeline import steps
        from fraud_pipeline.pipeline.airflow_support import db_connection, smtp_target

        with db_connection() as conn:
            return steps.alert(conn, target=smtp_target())

    @task(
        doc_md="While a challenger is registered, score the stored payments with it too, off "
        "the hot path (beside alert); a challenger failure is logged, never fails the run."
    )
    def shadow_score(loaded: dict[str, Any]) -> dict[str, Any]:
        from fraud_pipeline.pipeline.airflow_support import db_connection
        from fraud_pipeline.pipeline.results import Loaded
        from fraud_pipeline.pipeline.shadow import shadow_loaded

        with db_connection() as conn:
            return shadow_loaded(conn, Loaded.from_xcom(loaded))

    # body: ingest, then score and store
    ingested = ingest()
    loaded = score_and_load(ingested)
    # then, side by side: the champion's alerts never wait for the challenger
    chain(loaded, [alert(loaded), shadow_score(loaded)])


dag = fraud_pipeline()

if __name__ == "__main__":
    dag.test()
