"""Headless Chromium for the browser tests: Debian's build, driven by Playwright, and the report
served by `streamlit run` for it to open."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from fraud_pipeline.config import REPO_ROOT
from fraud_pipeline.net import free_port, wait_for_port
from tests.support.processes import stop_process

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
NEEDS_CHROMIUM = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs Debian chromium (/usr/bin/chromium): apt-get install chromium",
)


@contextmanager
def streamlit_report(
    database_url: str, log_path: Path, options: Sequence[str] = (), **env: str
) -> Iterator[str]:
    """The report served by `streamlit run` on a free port (its roles from DATABASE_URL);
    `options`: more of `streamlit run`'s options (`--secrets.files PATH`)."""
    port = free_port()
    environment = {
        **os.environ,
        "DATABASE_URL": database_url,
        "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
        **env,
    }
    environment.pop("REPORT_DATABASE_URL", None)
    environment.pop("REVIEW_DATABASE_URL", None)
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                str(REPO_ROOT / "fraud-dashboard" / "app.py"),
                "--server.port",
                str(port),
                "--server.address",
                "127.0.0.1",
                "--server.headless",
                "true",
                *options,
            ],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_for_port("127.0.0.1", port, timeout=60)
            yield f"http://127.0.0.1:{port}/"
        finally:
            stop_process(server)


def sign_in_at(page: Any, address: str, user: str, password: str) -> None:
    """Open any of the report's addresses (`review?case=...`) and sign in there; the page
    asked for follows (nothing is awaited)."""
    page.goto(address, wait_until="domcontentloaded")
    page.get_by_role("textbox", name="User").fill(user)
    page.get_by_role("textbox", name="Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def sign_in(page: Any, url: str, user: str, password: str) -> None:
    """Open the report and sign in; returns once the first figure is drawn."""
    sign_in_at(page, url, user, password)
    page.wait_for_selector('[data-testid="stMetricValue"]', timeout=60_000)
