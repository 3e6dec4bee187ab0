"""The one definition of the pipeline's configuration.

Every setting is read from the environment (or a `.env` file at the repository root), typed and
validated once. The DAGs, the dashboard, the CLI and the tests all call `get_settings()`.
Two profiles: `dev` (local defaults, embedded services) and `prod` (every secret must be set).
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[3]
PACKAGE_ROOT = REPO_ROOT / "fraud-pipeline"

# Used only by the dev profile so that a fresh clone runs; prod refuses it.
DEV_CARD_TOKEN_KEY = "dev-only-card-token-key-change-me"  # noqa: S105


class Settings(BaseSettings):
    """Typed settings; names match the environment variables (case-insensitive)."""

    model_config = SettingsConfigDict(
        env_file=REPO_ROOT / ".env",
        env_file_encoding="utf-8",
        extra="ignore",
        hide_input_in_errors=True,  # a rejected value may hold a password: the message says why
    )

    fraud_profile: Literal["dev", "prod"] = "dev"

    # Storage
    database_url: str | None = Field(
        default=None,
        description="postgresql:// URL of fraud_db; unset in dev = 127.0.0.1:5432 or embedded",
    )
    database_name: str = "fraud_db"
    upsert_batch_size: int = Field(default=20_000, ge=1)
    business_tz: str = "Europe/Paris"

    # Card data protection (PCI DSS): HMAC key for card tokens.
    card_token_key: SecretStr = SecretStr(DEV_CARD_TOKEN_KEY)

    # Payments API
    payments_api_url: str = "http://127.0.0.1:8000"
    payments_api_mode: Literal["windowed", "current"] = "windowed"
    payments_api_timeout_s: float = Field(default=10.0, gt=0, description="per connect/read")
    payments_api_fetch_budget_s: float = Field(
        default=120.0, gt=0, description="wall clock for all pages of one window"
    )
    payments_api_max_pages: int = Field(default=1_000, ge=1, description="pages per window")
    payments_api_max_response_bytes: int = Field(
        default=64_000_000, ge=1_024, description="bytes per response body"
    )
    # The payments API simulator (`serve-payments`) only: the share of payments it delivers late
    # and the longest delay (uniform in (0, max], deterministic per seed and payment).
    payments_late_share: float = Field(default=0.0, ge=0, le=1, description="simulator only")
    payments_late_delay_max_s: float = Field(default=480.0, gt=0, description="simulator only")

    # The per-minute DAG: catch up missed minutes after downtime (the payments API keeps them),
    # and how many runs may overlap when one is slow.
    # Missed minutes are caught up by the high-water mark (storage/watermark.py): a run fetches
    # from the end of the last landed window, at most this many minutes at a time.
    dag_catchup: bool = False
    dag_max_active_runs: int = Field(default=2, ge=1, le=8)
    dag_catchup_max_span_min: int = Field(default=60, ge=1, le=24 * 60)
    # Late payments (steps.ingest, storage/watermark.py): each run re-reads this many minutes
    # before its interval, so a payment delivered up to this long after its time is stored and
    # alerted once...
    late_payment_lookback_min: int = Field(default=10, ge=0, le=24 * 60)
    # ...and re-reads once more the minute(s) this long before it: a payment new there arrived
    # beyond the bound; it is stored, alerted (digest when old) and counted as such.
    late_payment_recheck_min: int = Field(default=60, ge=0, le=24 * 60)
    # The morning summary waits for its day to be loaded at most this long, then fails loudly.
    summary_wait_max_s: int = Field(default=6 * 3600, ge=1)

    # Model and scoring
    artifacts_dir: Path = PACKAGE_ROOT / "artifacts"
    model_store: str = Field(
        default=str(REPO_ROOT / ".local" / "models"),
        description="where `model register` keeps each version's artifacts: a folder or s3://",
    )
    sagemaker_endpoint_name: str = "fraud-xgboost"
    aws_region: str = "eu-west-3"
    sagemaker_endpoint_url: str | None = Field(
        default="http://127.0.0.1:8080",
        description="Local SageMaker-compatible server; empty in prod = the real AWS endpoint",
    )
    scoring_deadline_s: float = Field(
        default=120.0, gt=0, description="wall clock for one predict call, retries included"
    )
    scoring_content_type: Literal["application/x-npy", "text/csv"] = "application/x-npy"

    # SageMaker deployment (`fraud-pipeline sagemaker deploy`); not needed to score locally
    sagemaker_bucket: str | None = Field(default=None, description="S3 bucket for model.tar.gz")
    sagemaker_artifact_prefix: str = "fraud-pipeline/models"
    sagemaker_role_arn: str | None = Field(default=None, description="the execution role")
    sagemaker_image_uri: str | None = Field(
        default=None, description="ECR URI of infra/sagemaker's image; 'builtin-xgboost' = AWS's"
    )
    sagemaker_endpoint_type: Literal["serverless", "realtime"] = "serverless"
    sagemaker_serverless_memory_mb: int = Field(default=2048, ge=1024, le=6144, multiple_of=1024)
    sagemaker_serverless_max_concurrency: int = Field(default=5, ge=1, le=200)
    sagemaker_instance_type: str = "ml.c5.large"
    sagemaker_instance_count: int = Field(default=1, ge=1)

    # Scale-out (issue 18, docs/scaling.md). A real-time endpoint's variant is a scalable target
    # of Application Auto Scaling, tracking invocations per instance per minute (one invocation
    # is one batch of up to ~3.5 MB); serverless endpoints scale themselves (max concurrency).
    sagemaker_autoscaling_min_instances: int = Field(default=1, ge=1)
    sagemaker_autoscaling_max_instances: int = Field(default=4, ge=1)
    sagemaker_autoscaling_target_invocations: float = Field(
        default=60.0, gt=0, description="invocations per instance per minute the policy holds"
    )
    sagemaker_autoscaling_scale_in_cooldown_s: int = Field(default=300, ge=0)
    sagemaker_autoscaling_scale_out_cooldown_s: int = Field(default=60, ge=0)
    # payments_scored keeps this many days (by trans_time); `fraud-pipeline db archive` moves
    # older payments, with their reviews, to the archive tables in batches (storage/archive.py).
    retention_days: int = Field(
        default=90, ge=35, description="at least the 30-day monitoring windows plus margin"
    )
    archive_batch_size: int = Field(default=10_000, ge=1)
    # The audit trail keeps this many days (PCI DSS 10.5.1: at least 12 months);
    # `fraud-pipeline audit purge` deletes older rows.
    audit_retention_days: int = Field(default=365, ge=365)

    # Alerts
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 8025
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    alert_from: str = "fraud-pipeline@localhost"
    alert_to: str = "fraud-team@localhost"
    report_url: str = "http://127.0.0.1:8501"
    # A fraud older than this when its alert is due (a back-fill, a catch-up after downtime) is
    # not alerted as new: it goes into one catch-up digest (alerting/digest.py).
    alert_max_age_min: float = Field(
        default=60.0, gt=0, description="older pending frauds: one catch-up digest, not alerts"
    )

    # Model monitoring (the daily fraud_model_monitor DAG, monitoring/health.py): one warning
    # email a day when a figure crosses its threshold.
    monitor_psi_max: float = Field(default=0.2, gt=0, description="score/feature drift (PSI)")
    monitor_flag_share_ratio_max: float = Field(
        default=3.0, gt=1, description="share flagged above this many times the reference's"
    )
    monitor_alert_volume_ratio_max: float = Field(
        default=3.0, gt=1, description="alerts above this many times their 30-day daily median"
    )
    monitor_quarantine_share_max: float = Field(default=0.01, ge=0, le=1)
    monitor_precision_min: float = Field(
        default=0.5, ge=0, le=1, description="confirmed precision of reviewed alerts, 30 days"
    )
    monitor_precision_min_reviews: int = Field(default=50, ge=1)
    monitor_feature_sample: int = Field(
        default=2_000, ge=100, description="payments a day whose features are recomputed"
    )

    # Retraining (the weekly fraud_retrain DAG, retrain/): a challenger learns from the training
    # files plus the labelled recent window of payments_scored (the analysts' verdicts override
    # `is_fraud`), except its last RETRAIN_HOLDOUT_DAYS, on which champion and challenger are both
    # measured. The gate: the challenger's PR-AUC must beat the champion's by the gain, and its
    # precision and recall (each model at its own threshold) may fall short of the champion's by
    # at most the tolerance; otherwise it stays a challenger, with the reason.
    retrain_window_days: int = Field(
        default=28, ge=2, le=366, description="days of payments_scored a retraining reads"
    )
    retrain_holdout_days: int = Field(
        default=7, ge=1, description="the window's last days: measured on, never trained on"
    )
    retrain_min_pr_auc_gain: float = Field(
        default=0.005, ge=-1, le=1, description="challenger PR-AUC minus champion PR-AUC, at least"
    )
    retrain_tolerance: float = Field(
        default=0.02, ge=0, le=1, description="precision or recall the challenger may lose"
    )
    retrain_min_eval_frauds: int = Field(
        default=20, ge=1, description="labelled frauds the evaluation needs to decide anything"
    )
    retrain_sample_rows: int | None = Field(
        default=None, ge=1_000, description="rows of the training files used (unset = all)"
    )

    # Morning report: people sign in with their own accounts (security.users), never a shared one
    report_database_url: str | None = Field(
        default=None, description="unset = the app database as role fraud_report_reader"
    )
    review_database_url: str | None = Field(
        default=None, description="unset = the app database as role fraud_report_reviewer"
    )
    admin_database_url: str | None = Field(
        default=None, description="unset = the app database as role fraud_report_admin"
    )
    lead_database_url: str | None = Field(
        default=None, description="unset = the app database as role fraud_report_lead (rules)"
    )
    report_cache_ttl_s: int = Field(default=60, ge=0, description="how long a query is reused")
    report_stale_after_min: float = Field(
        default=10.0, gt=0, description="no newly scored payment for this long = stalled"
    )

    # Local stack (`make run`): state, ports of the services it starts, Airflow's metadata DB
    local_state_dir: Path = REPO_ROOT / ".local"
    inbox_port: int = Field(default=8026, description="web inbox over the local mail catcher")
    airflow_port: int = Field(default=8081, description="Airflow UI and API (8080 = model)")
    airflow_database_name: str = "airflow_db"

    @field_validator("business_tz")
    @classmethod
    def _known_time_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"BUSINESS_TZ={value!r} is not a known IANA time zone") from error
        return value

    @field_validator(
        "sagemaker_endpoint_url",
        "database_url",
        "report_database_url",
        "review_database_url",
        "admin_database_url",
        "lead_database_url",
        "retrain_sample_rows",
        mode="before",
    )
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator(
        "database_url",
        "report_database_url",
        "review_database_url",
        "admin_database_url",
        "lead_database_url",
    )
    @classmethod
    def _postgresql_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        """`localhost:5432` or a typo in the scheme: say which variable, and the form expected."""
        if value is None or re.match(r"postgres(ql)?(\+\w+)?://", value):
            return value
        shown = re.sub(r":[^:@/]*@", ":***@", value)  # never a password in the message
        raise ValueError(
            f"{(info.field_name or '').upper()}={shown!r} is not a PostgreSQL URL: expected "
            "one like postgresql://fraud@db.example:5432/fraud_db (a password after the user)"
        )

    @model_validator(mode="after")
    def _autoscaling_range(self) -> Settings:
        if self.sagemaker_autoscaling_max_instances < self.sagemaker_autoscaling_min_instances:
            raise ValueError(
                "SAGEMAKER_AUTOSCALING_MAX_INSTANCES must be >= SAGEMAKER_AUTOSCALING_MIN_INSTANCES"
            )
        return self

    @model_validator(mode="after")
    def _holdout_inside_window(self) -> Settings:
        if self.retrain_holdout_days >= self.retrain_window_days:
            raise ValueError(
                f"RETRAIN_HOLDOUT_DAYS={self.retrain_holdout_days} leaves nothing to train on in "
                f"RETRAIN_WINDOW_DAYS={self.retrain_window_days}"
            )
        return self

    @model_validator(mode="after")
    def _prod_needs_real_secrets(self) -> Settings:
        if self.fraud_profile != "prod":
            return self
        missing = []
        if self.card_token_key.get_secret_value() == DEV_CARD_TOKEN_KEY:
            missing.append("CARD_TOKEN_KEY")
        if not self.database_url:
            missing.append("DATABASE_URL")
        if missing:
            raise ValueError(f"FRAUD_PROFILE=prod requires these environment variables: {missing}")
        return self

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.business_tz)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings read once per process (tests call `get_settings.cache_clear()` after patching)."""
    return Settings()
