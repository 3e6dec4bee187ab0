"""
### fraud_daily_report: the morning summary email

At 07:00 business time, email yesterday's counts, frauds and amounts with a link to the
Streamlit report (which reads the same SQL, `fraud_report_for_day`). The email waits until
every payment of the day is loaded (the pipeline's high-water mark covers the whole day, and
LATE_PAYMENT_LOOKBACK_MIN past it for late payments): on a
first start, while yesterday is still being back-filled, or after downtime, it goes out once
the catch-up is done, never with a half-loaded day.
"""

from __future__ import annotations

from airflow.sdk import PokeReturnValue, dag, task

from fraud_pipeline.pipeline.airflow_support import (
    SUMMARY_CRON,
    daily_dag_args,
    day_sensor_args,
)


@dag(
    dag_id="fraud_daily_report",
    **daily_dag_args(SUMMARY_CRON),
    tags=["fraud", "report"],
    doc_md=__doc__,
)
def fraud_daily_report():
    @task.sensor(**day_sensor_args())
    def day_loaded(logical_date=None) -> PokeReturnValue:
        from fraud_pipeline.pipeline.airflow_support import poke_day_loaded

        return poke_day_loaded(logical_date)

    @task(doc_md="Summarise the day from fraud_report_for_day and email it.")
    def send_summary(day: str) -> dict:
        from datetime import date

        from fraud_pipeline.pipeline.airflow_support import db_connection, smtp_target
        from fraud_pipeline.report.morning_summary import send_daily_summary

        with db_connection() as conn:
            return send_daily_summary(conn, date.fromisoformat(day), target=smtp_target())

    send_summary(day_loaded())


dag = fraud_daily_report()

if __name__ == "__main__":
    dag.test()
