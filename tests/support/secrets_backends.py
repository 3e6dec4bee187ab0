"""Airflow secrets backends for the tests: one that is unreachable."""

from __future__ import annotations

from airflow.secrets import BaseSecretsBackend


class UnreachableBackend(BaseSecretsBackend):
    """A vault that cannot be reached: every lookup raises."""

    def get_conn_value(self, conn_id: str, team_name: str | None = None) -> str | None:
        raise ConnectionError(f"vault.example: connection refused looking up {conn_id}")
