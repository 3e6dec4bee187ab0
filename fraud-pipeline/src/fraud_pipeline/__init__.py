"""Near-real-time card fraud detection: the logic behind the DAGs, the report and the CLI."""

__version__ = "0.1.0"
