"""Alerting: one email per run with new frauds (each fraud once), and the morning summary."""
