"""
### fraud_daily_report: the morning summary email

At 07:00 business time, email yesterday's counts, frauds and amounts with a link to the
Streamlit report (which reads the same SQL, `fraud_report_for_day`).
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag, task
from airflow.timetables.trigger import CronTriggerTimetable

from fraud_pipeline.config import get_settings

BUSINESS_TZ = get_settings().business_tz


@dag(
    dag_id="fraud_daily_report",
    schedule=CronTriggerTimetable("0 7 * * *", timezone=BUSINESS_TZ),
    start_date=pendulum.datetime(2026, 1, 1, tz=BUSINESS_TZ),
    catchup=False,
    max_active_runs=1,
    default_args={
        "retries": 3,
        "retry_delay": timedelta(minutes=2),
        "retry_exponential_backoff": True,
    },
    tags=["fraud", "report"],
    doc_md=__doc__,
)
def fraud_daily_report():
    @task(doc_md="Summarise yesterday from fraud_report_for_day and email it.")
    def send_summary() -> dict:
        from fraud_pipeline.alerting.morning_summary import send_daily_summary
        from fraud_pipeline.pipeline.airflow_support import db_connection, smtp_target

        with db_connection() as conn:
            return send_daily_summary(conn, target=smtp_target())

    send_summary()


dag = fraud_daily_report()

if __name__ == "__main__":
    dag.test()
