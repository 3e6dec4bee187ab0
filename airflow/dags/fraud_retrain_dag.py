"""
### fraud_retrain: a challenger, the gate, and the champion the endpoint serves

Weekly (Monday 03:00 business time), or triggered by hand (param `window_days`): train a
challenger on the training files plus the labelled recent window of `payments_scored` (the
analysts' verdicts override `is_fraud`) except its last days, register it, score those last days
with the champion and the challenger, record both in `model_versions.metrics`, and promote the
challenger only if it passes the gate (RETRAIN_* settings); otherwise it stays a challenger with
the reason. After a promotion the endpoint serves the new champion without downtime.

It starts paused (it trains on the whole training files: minutes of both cores of a laptop):
unpause it to retrain every week, or trigger it by hand (or `fraud-pipeline retrain`). Unpausing
makes the scheduler start the most recent Monday's slot at once: a scheduled slot run more than
`STALE_SLOT` late trains on the latest complete window (ending at the start of today) instead of
that week-old one, and its log says which. A run triggered while the DAG is paused waits queued
until it is unpaused: `make run`'s status line warns about it.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, chain, dag, task

from fraud_pipeline.pipeline.airflow_support import daily_dag_args


@dag(
    dag_id="fraud_retrain",
    **daily_dag_args("0 3 * * 1"),
    is_paused_upon_creation=True,
    params={
        "window_days": Param(
            None,
            type=["null", "integer"],
            minimum=2,
            description="days of payments_scored to read (default RETRAIN_WINDOW_DAYS)",
        )
    },
    tags=["fraud", "model"],
    doc_md=__doc__,
)
def fraud_retrain():
    @task(
        execution_timeout=timedelta(hours=3),
        doc_md="Train a challenger on the files and the recent window; register it.",
    )
    def train_challenger(logical_date=None, params=None, dag_run=None) -> dict:
        from fraud_pipeline.config import get_settings
        from fraud_pipeline.pipeline.airflow_support import db_connection, no_retry
        from fraud_pipeline.retrain import run

        settings = get_settings()
        with no_retry(run.RetrainError), db_connection() as conn:
            days = (params or {}).get("window_days")
            scheduled = getattr(dag_run, "run_type", None) == "scheduled"  # not by hand
            window, said = run.window_for_run(logical_date, settings, days, scheduled=scheduled)
            print(said, flush=True)  # which window, in the task's log (a late slot says so)
            challenger = run.train_challenger(conn, window, settings)
        return {"version": challenger.version, "window": window.as_json(), "said": said}

    @task(
        execution_timeout=timedelta(hours=1),
        doc_md="Score the holdout with champion and challenger, record both, apply the gate.",
    )
    def judge(trained: dict) -> dict:
        from fraud_pipeline.config import get_settings
        from fraud_pipeline.pipeline.airflow_support import db_connection, no_retry
        from fraud_pipeline.retrain import run
        from fraud_pipeline.retrain.window import Window

        with no_retry(run.RetrainError), db_connection() as conn:
            decision = run.judge(
                conn, Window.from_json(trained["window"]), trained["version"], get_settings()
            )
        return decision.as_json()

    @task(
        execution_timeout=timedelta(minutes=30),
        doc_md="After a promotion, the endpoint serves the new champion (reload or SageMaker).",
    )
    def serve_champion(decision: dict) -> str:
        from fraud_pipeline.config import get_settings
        from fraud_pipeline.pipeline.airflow_support import db_connection
        from fraud_pipeline.retrain import run

        if not decision["promoted"]:
            return f"{decision['champion']} stays the champion: {decision['reason']}"
        with db_connection() as conn:
            return run.serve_champion(conn, get_settings())

    chain(serve_champion(judge(train_challenger())))


dag = fraud_retrain()

if __name__ == "__main__":
    dag.test()
