"""Real services for the pipeline tests: payments API, model server, SMTP server, on loopback."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import ThreadingHTTPServer

import pandas as pd
import pytest

from fraud_pipeline import clock
from fraud_pipeline.config import Settings, get_settings
from fraud_pipeline.devstack import payments_api
from fraud_pipeline.devstack.mailcatcher import MailCatcher
from fraud_pipeline.net import free_port
from fraud_pipeline.serving import model_server


def serve(server: ThreadingHTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return thread


@dataclass
class Services:
    settings: Settings
    mail: MailCatcher
    payments: ThreadingHTTPServer
    model: ThreadingHTTPServer


@pytest.fixture
def services(clean_db, tmp_path, monkeypatch) -> Iterator[Services]:
    """Generator-fed payments API, the real model server and an SMTP server, all on free ports."""
    payments = payments_api.build_server(
        payments_api.generator_source(seed=11, rate_per_min=40), port=free_port()
    )
    model = model_server.build_server(get_settings().artifacts_dir, port=free_port())
    mail = MailCatcher(tmp_path / "mail", port=free_port()).start()
    for server in (payments, model):
        serve(server)
    env = {
        "PAYMENTS_API_URL": f"http://127.0.0.1:{payments.server_port}",
        "SAGEMAKER_ENDPOINT_URL": f"http://127.0.0.1:{model.server_port}",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(mail.port),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    try:
        yield Services(get_settings(), mail, payments, model)
    finally:
        for server in (payments, model):
            server.shutdown()
            server.server_close()
        mail.stop()
        get_settings.cache_clear()


def night_window(hours: float = 2.0) -> tuple[pd.Timestamp, pd.Timestamp]:
    """A past night window (fraud is mostly at night), so the run finds frauds to alert.

    It ends two hours after yesterday's midnight (business time), whatever the day, DST included.
    """
    end = pd.Timestamp(clock.day_start(clock.yesterday())) + pd.Timedelta(hours=2)
    return end - pd.Timedelta(hours=hours), end
