"""
### fraud_pipeline: score every card payment within its minute

Every minute, for the run's data interval: **extract** the payments from the payments API (card
numbers tokenised at once; from the high-water mark when runs were missed, see
`storage/watermark.py`; re-reading the last LATE_PAYMENT_LOOKBACK_MIN minutes for late payments) → **validate** (bad rows to `payments_quarantine` with the reason) →
**transform** (saved transformer + card history from PostgreSQL) → **score** (SageMaker endpoint,
batched) → **load** (idempotent upsert into `payments_scored`) → **alert** (one email per run,
each fraud exactly once). Beside alert, **shadow_score**: while a challenger is registered, it
scores the same payments too, for the report's comparison (`pipeline/shadow.py`).

Tasks exchange references (run id, counts) through XCom, never payments: the data waits in
PostgreSQL tables between tasks, so nothing is lost when a task fails and retries. Payments that
could not be scored (endpoint switched off) are picked up by the next runs.
Logic lives in the `fraud_pipeline` package; these tasks only call it.
"""

from __future__ import annotations

from datetime import timedelta

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
        doc_md="Fetch the data interval's payments from the payments API and land them, cards tokenised."
    )
    def extract() -> dict:
        from fraud_pipeline.pipeline import steps
        from fraud_pipeline.pipeline.airflow_support import db_connection

        context = get_current_context()
        with db_connection() as conn:
            return steps.extract(
                conn,
                context["run_id"],
                context["data_interval_start"],
                context["data_interval_end"],
                catch_up=True,
            )

    @task(doc_md="Good rows to the inbox; bad rows to payments_quarantine with the reason.")
    def validate(ref: dict) -> dict:
        from fraud_pipeline.pipeline import steps
        from fraud_pipeline.pipeline.airflow_support import db_connection

        with db_connection() as conn:
            return steps.validate(conn, ref["run_id"], **steps.late_marks(ref))

    @task(doc_md="Claim every pending payment; features from preprocess.joblib and card history.")
    def transform(ref: dict) -> dict:
        from fraud_pipeline.pipeline import steps
        from fraud_pipeline.pipeline.airflow_support import db_connection

        with db_connection() as conn:
            return steps.transform(conn, ref["run_id"])

    @task(doc_md="Score the claimed batch on the SageMaker endpoint (batched, retried, deadline).")
    def score(ref: dict) -> dict:
        from fraud_pipeline.pipeline import steps
        from fraud_pipeline.pipeline.airflow_support import db_connection, scoring_client

        with db_connection() as conn:
            return steps.score(conn, ref["batch_id"], scoring_client())

    @task(
        outlets=[PAYMENTS_SCORED],
        doc_md="Upsert the scored batch into payments_scored (ON CONFLICT).",
    )
    def load(ref: dict) -> dict:
        from fraud_pipeline.pipeline import steps
        from fraud_pipeline.pipeline.airflow_support import db_connection

        with db_connection() as conn:
            return steps.load(conn, ref["batch_id"])

    @task(doc_md="One email for the new frauds; each fraud alerted exactly once.")
    def alert(ref: dict) -> dict:
        from fraud_pipeline.pipeline import steps
        from fraud_pipeline.pipeline.airflow_support import db_connection, smtp_target

        with db_connection() as conn:
            return steps.alert(conn, target=smtp_target())

    @task(
        doc_md="While a challenger is registered, score the loaded payments with it too, off "
        "the hot path (beside alert); a challenger failure is logged, never fails the run."
    )
    def shadow_score(ref: dict) -> dict:
        from fraud_pipeline.pipeline.airflow_support import db_connection
        from fraud_pipeline.pipeline.shadow import shadow_loaded

        with db_connection() as conn:
            return shadow_loaded(conn, ref)

    landed = extract()
    validated = validate(landed)
    features = transform(validated)
    scored = score(features)
    loaded = load(scored)
    chain(landed, validated, features, scored, loaded, alert(loaded))
    # Off the hot path: the champion's alerts never wait for the challenger.
    chain(loaded, shadow_score(loaded))


dag = fraud_pipeline()

if __name__ == "__main__":
    dag.test()
