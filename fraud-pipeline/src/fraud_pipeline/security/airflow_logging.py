"""Airflow's logging with every card number masked, task log files included (PCI DSS 3.4.1).

Airflow 3 writes a task's log file in the task's supervisor process, through a chain of
structlog processors: the task process sends it every event (its own log calls, Airflow's task
runner's, such as "Task failed with exception" with the traceback as a dict, and its stdout
and stderr lines), and the supervisor adds its own. None of it is a stdlib log record, so the
record factory of `log_masking` never sees it. The one place Airflow lets a deployment add a
processor to that chain is the remote task log of `[logging] logging_config_class`
(`REMOTE_TASK_LOG.processors`, run on every event before it is written, in the supervisor and
in the task process): `MaskingTaskLog` puts `log_masking.mask_event` there, in front of the
remote log Airflow itself would use (S3 in production, `remote_logging`), which still uploads
and reads the logs.

Set with `AIRFLOW__LOGGING__LOGGING_CONFIG_CLASS` = `log_masking.AIRFLOW_LOGGING_CONFIG_CLASS`
(`make run`, docker-compose, the Helm values, the tests' Airflow). `LOGGING_CONFIG` is Airflow's default
dictConfig with `CardNumberFilter` on every handler (the scheduler's and API server's own logs).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from airflow.config_templates import airflow_local_settings as _airflow

from fraud_pipeline.security.log_masking import mask_event

_FILTER = "mask_card_numbers"


def _masked_config(config: dict[str, Any]) -> dict[str, Any]:
    masked = copy.deepcopy(config)
    masked.setdefault("filters", {})[_FILTER] = {
        "()": "fraud_pipeline.security.log_masking.CardNumberFilter"
    }
    for handler in masked.get("handlers", {}).values():
        handler["filters"] = [*handler.get("filters", []), _FILTER]
    return masked


@dataclass(frozen=True)
class MaskingTaskLog:
    """A remote task log (Airflow's `RemoteLogIO`) that masks every event before it is written,
    then hands over to `inner`, the remote log Airflow would use without us (or none)."""

    inner: Any = None

    @property
    def processors(self) -> tuple[Any, ...]:
        return (mask_event, *getattr(self.inner, "processors", ()))

    def upload(self, path: Any, ti: Any = None) -> None:
        if self.inner is not None:
            self.inner.upload(path, ti)

    def read(self, relative_path: str, ti: Any) -> Any:
        if self.inner is None:  # Airflow's way to say "no remote log: read the local file"
            raise NotImplementedError("no remote task log")
        return self.inner.read(relative_path, ti)

    def __getattr__(self, name: str) -> Any:  # `stream` and the like, when `inner` has them
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)


LOGGING_CONFIG = _masked_config(_airflow.DEFAULT_LOGGING_CONFIG)
REMOTE_TASK_LOG = MaskingTaskLog(_airflow.REMOTE_TASK_LOG)
DEFAULT_REMOTE_CONN_ID = _airflow.DEFAULT_REMOTE_CONN_ID
