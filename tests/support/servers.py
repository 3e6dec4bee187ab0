"""Real services for the pipeline tests: payments API, model server, SMTP server, on loopback."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from typing import Any

import pandas as pd
import uvicorn

from fraud_devstack.stack.mailcatcher import MailCatcher
from fraud_pipeline import clock
from fraud_pipeline.config import Settings
from fraud_pipeline.net import wait_for_port
from fraud_pipeline.serving import http_server
from tests.support.processes import stop_process


class ServerThread:
    """An ASGI app served by uvicorn (the production settings) on a thread of the test process.

    `port` 0 takes a free port; `url` says which once `start()` has returned (it waits until the
    server listens). `stop()` is uvicorn's graceful stop: requests in flight finish first.
    """

    def __init__(self, app: Any, port: int = 0, host: str = "127.0.0.1") -> None:
        self.host = host
        self.server = uvicorn.Server(http_server.config(app, host, port, timeout_s=10))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> ServerThread:
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError(f"the server on {self.host} did not start (see the log)")
            time.sleep(0.01)
        return self

    @property
    def port(self) -> int:
        return int(self.server.servers[0].sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def serve_app(app: Any, port: int = 0) -> ServerThread:
    """An ASGI app (the model server's, the payments API's) served on loopback until `.stop()`."""
    return ServerThread(app, port).start()


def serve(server: ThreadingHTTPServer) -> threading.Thread:
    """A hand-made stdlib server (a fake that misbehaves on purpose) on a daemon thread."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return thread


@dataclass
class Services:
    settings: Settings
    mail: MailCatcher
    payments: ServerThread
    model: ServerThread


def night_window(hours: float = 2.0) -> tuple[pd.Timestamp, pd.Timestamp]:
    """A past night window (fraud is mostly at night), so the run finds frauds to alert.

    It ends two hours after yesterday's midnight (business time), whatever the day, DST included.
    """
    end = pd.Timestamp(clock.day_start(clock.yesterday())) + pd.Timedelta(hours=2)
    return end - pd.Timedelta(hours=hours), end


@contextmanager
def running(command: list[str], port: int, env: dict[str, str] | None = None) -> Iterator[None]:
    """A server process, until the block ends; its output shown if it never listens."""
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True
    )
    try:
        try:
            wait_for_port("127.0.0.1", port, timeout=60)
        except TimeoutError:
            process.kill()
            raise AssertionError(process.communicate()[0]) from None
        yield
    finally:
        stop_process(process)
