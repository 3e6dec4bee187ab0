"""A payments API that serves whatever JSON it is given (poison rows, non-objects, any time
format): the per-minute windows of `GET /transactions`, each item placed at its own instant."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pandas as pd

from fraud_pipeline.net import free_port
from tests.support.servers import serve

Item = tuple[pd.Timestamp, Any]  # (when the API serves it, the JSON value as sent)


def time_formats(when: pd.Timestamp, tz: str = "Europe/Paris") -> list[Any]:
    """One instant as the payments API may send it: wall clock in the business zone `tz`, ISO
    8601 with an offset, with `Z`, epoch ms, epoch seconds, and (when its seconds are 0) wall
    clock without seconds. Every one of them names the same instant."""
    local, utc = when.tz_convert(tz), when.tz_convert("UTC")
    formats: list[Any] = [
        local.strftime("%Y-%m-%d %H:%M:%S"),
        when.tz_convert("Asia/Karachi").isoformat(),
        utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        int(when.timestamp() * 1000),
        int(when.timestamp()),
    ]
    if local.second == 0 and local.microsecond == 0:
        formats.append(local.strftime("%Y-%m-%d %H:%M"))
    return formats


def build(items: list[Item], malformed: Any = None) -> ThreadingHTTPServer:
    """`malformed`: when set, every page is this JSON value instead (a malformed page)."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            query = {k: v[0] for k, v in parse_qs(urlparse(self.path).query).items()}
            start, end = pd.Timestamp(query["start"]), pd.Timestamp(query["end"])
            page = (
                malformed
                if malformed is not None
                else {
                    "payments": [value for when, value in items if start <= when < end],
                    "next_page_token": None,
                    "end": end.isoformat(),
                }
            )
            body = json.dumps(page).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)


@contextmanager
def hostile_api(items: list[Item], malformed: Any = None) -> Iterator[str]:
    """The API's URL while it runs."""
    server = build(items, malformed)
    serve(server)
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
