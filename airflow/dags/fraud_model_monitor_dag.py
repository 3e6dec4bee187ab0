"""
### fraud_model_monitor: the model's daily health

At 06:30 business time, once yesterday is fully loaded (the same wait as the morning summary),
compare the day with the training reference stored with the model: drift (PSI) of the score and
of the top features, share flagged, alert volume, share quarantined, confirmed precision of the
reviewed alerts. The figures go to `model_health` (the report's Model health page); one warning
email goes out when a figure crosses its threshold, never twice for the same day.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import PokeReturnValue, chain, dag, task

from fraud_pipeline.pipeline.airflow_support import (
    MONITOR_CRON,
    daily_dag_args,
    day_sensor_args,
)


@dag(
    dag_id="fraud_model_monitor",
    **daily_dag_args(MONITOR_CRON),
    tags=["fraud", "monitoring"],
    doc_md=__doc__,
)
def fraud_model_monitor():
    @task.sensor(**day_sensor_args())
    def day_loaded(logical_date=None) -> PokeReturnValue:
        from fraud_pipeline.pipeline.airflow_support import poke_day_loaded

        return poke_day_loaded(logical_date, waiting="the model health")

    @task(
        execution_timeout=timedelta(minutes=10),
        doc_md="Compute the day's health, upsert it into model_health, warn once if breached.",
    )
    def check_health(day: str) -> dict:
        from datetime import date

        from fraud_pipeline.monitoring.health import check_day
        from fraud_pipeline.pipeline.airflow_support import db_connection, smtp_target

        with db_connection() as conn:
            return check_day(conn, date.fromisoformat(day), target=smtp_target())

    chain(check_health(day_loaded()))


dag = fraud_model_monitor()

if __name__ == "__main__":
    dag.test()
