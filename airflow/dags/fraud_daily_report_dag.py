"""
### fraud_daily_report: the morning summary email

At 07:00 business time, email yesterday's counts, frauds and amounts with a link to the
Streamlit report (which reads the same SQL, `fraud_report_for_day`). The email waits until
every payment of the day is loaded (the pipeline's high-water mark covers the whole day): on a
first start, while yesterday is still being back-filled, or after downtime, it goes out once
the catch-up is done, never with a half-loaded day.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import PokeReturnValue, dag, task
from airflow.timetables.trigger import CronTriggerTimetable

from fraud_pipeline.config import get_settings

BUSINESS_TZ = get_settings().business_tz
WAIT_MAX_S = get_settings().summary_wait_max_s


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
    @task.sensor(
        poke_interval=min(60.0, WAIT_MAX_S / 2),  # every minute, at least twice in the wait
        timeout=WAIT_MAX_S,
        mode="reschedule",
        doc_md="Wait until every payment of the day is loaded (the high-water mark covers it).",
    )
    def day_loaded(logical_date=None) -> PokeReturnValue:
        from fraud_pipeline.pipeline.airflow_support import day_loaded, summary_day

        day = summary_day(logical_date)
        return PokeReturnValue(is_done=day_loaded(day), xcom_value=day.isoformat())

    @task(doc_md="Summarise the day from fraud_report_for_day and email it.")
    def send_summary(day: str) -> dict:
        from datetime import date

        from fraud_pipeline.alerting.morning_summary import send_daily_summary
        from fraud_pipeline.pipeline.airflow_support import db_connection, smtp_target

        with db_connection() as conn:
            return send_daily_summary(conn, date.fromisoformat(day), target=smtp_target())

    send_summary(day_loaded())


dag = fraud_daily_report()

if __name__ == "__main__":
    dag.test()
