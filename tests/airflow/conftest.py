"""Fixtures shared with the pipeline tests."""

from tests.pipeline.conftest import services  # noqa: F401 (fixture: real API, model, SMTP)
