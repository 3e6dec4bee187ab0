"""What the DAGs need from Airflow, each with a fallback to Settings so the same DAG runs anywhere.

- `fraud_db` Postgres connection (AIRFLOW_CONN_FRAUD_DB), else DATABASE_URL / local / embedded;
- `aws_default` AWS connection (its extra `endpoint_url` points at the local model server when
  local), else boto3 from Settings;
- `smtp_default` SMTP connection, else the SMTP_* settings.

The DAG files import it at parse time (the day sensor's arguments): what is heavy (SQLAlchemy,
pandas, the mail templates) is imported inside the functions that use it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import psycopg2
import psycopg2.extensions

from fraud_pipeline import clock
from fraud_pipeline.config import get_settings

if TYPE_CHECKING:
    from fraud_pipeline.alerting.alerts import SmtpTarget

log = logging.getLogger(__name__)

DB_CONN_ID = "fraud_db"
AWS_CONN_ID = "aws_default"
SMTP_CONN_ID = "smtp_default"
# Connection extras passed on to libpq (others, e.g. Airflow's own, are not libpq options).
LIBPQ_EXTRAS = frozenset(
    {"sslmode", "sslrootcert", "sslcert", "sslkey", "connect_timeout", "options"}
)
# The daily DAGs' schedules (business time); each run reports the day before its own.
SUMMARY_CRON = "0 7 * * *"  # fraud_daily_report
MONITOR_CRON = "30 6 * * *"  # fraud_model_monitor
DAILY_CRONS = (SUMMARY_CRON, MONITOR_CRON)


class ConnectionUnavailable(RuntimeError):
    """An Airflow connection could not be read: the task fails rather than fall back to the
    environment's settings (which might name another database or mail server)."""


def _airflow_connection(conn_id: str) -> Any | None:
    """The Airflow connection `conn_id`, or None only when Airflow is absent or the connection
    is defined nowhere and no secrets backend is configured.

    Airflow's SDK logs a secrets backend's exception at debug level and then reports the
    connection as undefined, so "not defined" is trusted only without a configured backend.
    """
    try:
        from airflow.sdk import BaseHook  # there only inside Airflow
        from airflow.sdk.exceptions import AirflowNotFoundException  # there only inside Airflow
    except ImportError:  # not inside Airflow (the CLI, the model server image)
        return None
    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        backend = _secrets_backend()
        if backend:
            raise ConnectionUnavailable(
                f"Airflow connection {conn_id!r} was not found and a secrets backend is "
                f"configured ({backend}): it may have failed (Airflow logs its errors at debug "
                "level); refusing to fall back to the environment's settings"
            ) from None
        return None
    except Exception as error:
        raise ConnectionUnavailable(
            f"reading Airflow connection {conn_id!r} failed: {type(error).__name__}: {error}"
        ) from error


def _secrets_backend() -> str:
    """The configured secrets backend (`[secrets] backend`), empty when none."""
    from airflow.configuration import conf  # there only inside Airflow

    return str(conf.get("secrets", "backend", fallback="") or "")


def _psycopg2_from_airflow(connection: Any) -> psycopg2.extensions.connection:
    """psycopg2 from the connection's fields: PostgresHook.get_conn() may hand out psycopg 3."""
    extra = {k: v for k, v in (connection.extra_dejson or {}).items() if k in LIBPQ_EXTRAS}
    return psycopg2.connect(
        host=connection.host or "127.0.0.1",
        port=int(connection.port or 5432),
        user=connection.login or None,
        password=connection.password or None,
        dbname=connection.schema or "fraud_db",
        **extra,
    )


@contextmanager
def db_connection() -> Iterator[psycopg2.extensions.connection]:
    """A connection to fraud_db for one task, closed afterwards."""
    from fraud_pipeline.storage.db import connect  # lazy: DAG files import this module

    airflow_connection = _airflow_connection(DB_CONN_ID)
    conn = connect() if airflow_connection is None else _psycopg2_from_airflow(airflow_connection)
    try:
        yield conn
    finally:
        conn.close()


@contextmanager
def no_retry(*errors: type[Exception]) -> Iterator[None]:
    """`errors` a retry cannot mend (no data, no champion) fail the task at once, saying why."""
    from airflow.sdk.exceptions import AirflowFailException  # there only inside Airflow

    try:
        yield
    except errors as error:
        raise AirflowFailException(str(error)) from error


def scoring_client() -> Any:
    from fraud_pipeline.serving.endpoint import EndpointClient  # lazy: DAG files import this module

    if _airflow_connection(AWS_CONN_ID) is not None:
        # there only inside Airflow
        from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
        from botocore.config import Config  # heavy; only when AWS is used

        hook = AwsBaseHook(
            aws_conn_id=AWS_CONN_ID,
            client_type="sagemaker-runtime",
            config=Config(retries={"total_max_attempts": 1}),
        )
        return EndpointClient.from_settings(runtime=hook.get_conn())
    return EndpointClient.from_settings()


def smtp_target() -> SmtpTarget:
    from fraud_pipeline.alerting.alerts import SmtpTarget  # lazy: DAG files import this module

    connection = _airflow_connection(SMTP_CONN_ID)
    if connection is None:
        return SmtpTarget.from_settings(get_settings())
    extra = connection.extra_dejson or {}
    return SmtpTarget(
        host=connection.host,
        port=int(connection.port or 25),
        user=connection.login or None,
        password=connection.password or None,
        starttls=str(extra.get("starttls", extra.get("disable_tls") is False)).lower() == "true",
    )


def summary_day(logical_date: datetime | None) -> date:
    """The day a morning summary run reports: the business day before its run's logical date
    (07:00 of day D+1 reports D); a manual run without one reports yesterday."""
    if logical_date is None:
        return clock.yesterday()
    return clock.business_day(logical_date) - timedelta(days=1)


def earliest_reported_day() -> date:
    """The earliest day the daily DAGs' latest slots report: Airflow runs each DAG's latest slot
    as soon as it is unpaused, so a first start before 07:00 asks for the day before yesterday
    too. The first start's back-fill begins there, so no first run waits on a day never loaded.
    """
    from croniter import croniter  # only for the daily DAGs

    now = clock.local(clock.now())
    slots = (croniter(cron, now).get_prev(datetime) for cron in DAILY_CRONS)
    return min(clock.business_day(slot) for slot in slots) - timedelta(days=1)


def day_loaded(day: date, waiting: str = "the summary") -> bool:
    """Whether every payment of `day` is loaded, late ones within the bound included (the runs'
    look-back has re-read the day's last minutes); if not, the log says what is missing."""
    # lazy: DAG files import this module
    from fraud_pipeline.storage.watermark import day_incomplete

    bound = timedelta(minutes=get_settings().late_payment_lookback_min)
    with db_connection() as conn, conn.cursor() as cur:
        missing = day_incomplete(cur, day, late_bound=bound)
    if missing:
        log.info("%s of %s waits: %s", waiting, day, missing)
    return missing is None


def daily_dag_args(cron: str) -> dict[str, Any]:
    """What the daily DAGs share: a cron on the business clock, no catch-up of missed days
    (each run waits for its own day), one run at a time, retries with backoff."""
    import pendulum  # Airflow's; there only inside Airflow
    from airflow.timetables.trigger import CronTriggerTimetable  # there only inside Airflow

    business_tz = get_settings().business_tz
    return {
        "schedule": CronTriggerTimetable(cron, timezone=business_tz),
        "start_date": pendulum.datetime(2026, 1, 1, tz=business_tz),
        "catchup": False,
        "max_active_runs": 1,
        "default_args": {
            "retries": 3,
            "retry_delay": timedelta(minutes=2),
            "retry_exponential_backoff": True,
        },
    }


def day_sensor_args() -> dict[str, Any]:
    """The `@task.sensor` arguments of a daily DAG waiting for its day to be loaded: poke in
    "reschedule" mode (the worker slot is freed between pokes, and stopping Airflow never waits
    on a sleeping task), every minute, at least twice in SUMMARY_WAIT_MAX_S, then fail loudly."""
    wait_max_s = get_settings().summary_wait_max_s
    return {
        "poke_interval": min(60.0, wait_max_s / 2),
        "timeout": wait_max_s,
        "mode": "reschedule",
        "doc_md": "Wait until every payment of the day is loaded (the high-water mark covers it).",
    }


def poke_day_loaded(logical_date: datetime | None, waiting: str = "the summary") -> Any:
    """One poke of a daily DAG's day sensor: done once the day before the run is loaded; the
    day (ISO) goes to the next task."""
    from airflow.sdk import PokeReturnValue  # there only inside Airflow

    day = summary_day(logical_date)
    return PokeReturnValue(is_done=day_loaded(day, waiting), xcom_value=day.isoformat())
