"""Real services for the pipeline tests: payments API, model server, SMTP server, on loopback."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from http.server import ThreadingHTTPServer

import pandas as pd

from fraud_pipeline import clock
from fraud_pipeline.config import Settings
from fraud_pipeline.devstack.mailcatcher import MailCatcher


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


def night_window(hours: float = 2.0) -> tuple[pd.Timestamp, pd.Timestamp]:
    """A past night window (fraud is mostly at night), so the run finds frauds to alert.

    It ends two hours after yesterday's midnight (business time), whatever the day, DST included.
    """
    end = pd.Timestamp(clock.day_start(clock.yesterday())) + pd.Timedelta(hours=2)
    return end - pd.Timedelta(hours=hours), end
