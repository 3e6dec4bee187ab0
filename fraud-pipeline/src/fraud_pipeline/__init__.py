"""Near-real-time card fraud detection: the logic behind the DAGs, the report and the CLI.

Importing the package masks card numbers in every log record of the process
(`security.log_masking.install`): every entry point (CLI, Airflow tasks, servers, report)
imports it first.
"""

from fraud_pipeline.security import log_masking as _log_masking

__version__ = "0.1.0"

_log_masking.install()
