"""A fault-injecting HTTP proxy, for proving the pipeline survives its neighbours misbehaving.

`FaultProxy` sits in front of a real server (the model server, the payments API) and forwards
every request, unless told to misbehave: answer a status (429/500/503), hang, answer slowly,
drip the answer a byte at a time, send garbage or a truncated body, drop one score, page
forever, re-deliver payments with other contents, edit a page (add, change or reorder its
items), or be switched off (the port refuses
connections, as an endpoint deleted to save cost does). A fault can be limited to the next N
requests, so "throttled twice, then fine" and "down for three runs" are both one line. Used by
tests/reliability; nothing here runs in production.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

import numpy as np
import requests

from fraud_pipeline.net import free_port

Fault = Literal[
    "status",
    "hang",
    "slow",
    "drip",
    "drip_headers",
    "garbage",
    "truncate",
    "drop_one_score",
    "malformed_page",
    "endless_pages",
    "rewrite_payments",
    "rewrite_page",
    "refuse_rows",
    "nan_rows",
]
Rewrite = Callable[[dict[str, Any]], dict[str, Any]]
Rows = Callable[[np.ndarray], np.ndarray]  # feature rows -> which of them the fault hits


@dataclass
class _Active:
    fault: Fault
    remaining: int | None  # None: until cleared
    status: int = 503
    delay_s: float = 0.0
    rewrite: Rewrite | None = None
    body: bytes | None = None
    rows: Rows | None = None


class _QuietServer(ThreadingHTTPServer):
    """A client that gave up (its timeout or deadline) is expected here: no traceback for it."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FaultProxy:
    """Forwarding proxy to `upstream` on a free loopback port; `inject()` a fault, `clear()` it."""

    def __init__(self, upstream: str, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.upstream = upstream.rstrip("/")
        self.host, self.port = host, port or free_port(host)
        self._lock = threading.Lock()
        self._active: _Active | None = None
        self._server: ThreadingHTTPServer | None = None
        self.faults_served = 0

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- control --------------------------------------------------------------------------------
    def inject(
        self,
        fault: Fault,
        *,
        times: int | None = None,
        status: int = 503,
        delay_s: float = 0.0,
        rewrite: Rewrite | None = None,
        body: bytes | None = None,
        rows: Rows | None = None,
    ) -> None:
        """Misbehave on the next `times` requests (all of them when None).

        `drip`: the real answer, one byte every `delay_s` (`drip_headers`: from its status line
        on, so that the client never even gets the headers); `endless_pages`: an empty payments
        page whose next_page_token never ends; `rewrite_payments`: each payment of a page
        passed through `rewrite` (a payment delivered again with other contents);
        `rewrite_page`: the whole page passed through `rewrite` (items added, changed, reordered).
        `body`: what `status` and `malformed_page` answer instead of their default body (an
        error body quoting a payment, a malformed page holding card numbers).
        `refuse_rows`: a 400 for a request holding any of the `rows` (a model that cannot score
        them); `nan_rows`: NaN as the score of each of the `rows`.
        """
        with self._lock:
            self._active = _Active(fault, times, status, delay_s, rewrite, body, rows)

    def clear(self) -> None:
        with self._lock:
            self._active = None

    def _take(self) -> _Active | None:
        with self._lock:
            active = self._active
            if active is None:
                return None
            if active.remaining is not None:
                active.remaining -= 1
                if active.remaining <= 0:
                    self._active = None
            self.faults_served += 1
            return active

    def start(self) -> FaultProxy:
        """Listen (again: a stopped proxy restarts on the same port, as a redeployed endpoint)."""
        self._server = _QuietServer((self.host, self.port), self._handler())
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Switch off: connections are refused until `start()`."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- serving --------------------------------------------------------------------------------
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._relay("GET")

            def do_POST(self) -> None:
                self._relay("POST")

            def _reply(
                self, status: int, body: bytes, content_type: str, error_type: str = ""
            ) -> None:
                self.send_response(status)
                if error_type:  # how botocore names the error (rest-json protocol)
                    self.send_header("x-amzn-ErrorType", error_type)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _relay(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                active = proxy._take()
                if active and active.fault == "status":
                    error = active.body or f'{{"error": "injected {active.status}"}}'.encode()
                    return self._reply(active.status, error, "application/json")
                if active and active.fault == "hang":
                    time.sleep(active.delay_s or 3600)
                    return None
                if active and active.fault == "slow":
                    time.sleep(active.delay_s)
                if active and active.fault == "endless_pages":
                    page = {"payments": [], "next_page_token": f"endless-{proxy.faults_served}"}
                    return self._reply(200, json.dumps(page).encode(), "application/json")
                if (
                    active
                    and active.fault == "refuse_rows"
                    and active.rows
                    and active.rows(np.load(io.BytesIO(body), allow_pickle=False)).any()
                ):
                    error = b'{"message": "injected: cannot score these rows"}'
                    return self._reply(400, error, "application/json", "ValidationError")
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")
                }
                upstream = requests.request(
                    method, proxy.upstream + self.path, data=body, headers=headers, timeout=120
                )
                content = upstream.content
                content_type = upstream.headers.get("Content-Type", "application/octet-stream")
                if active and active.fault == "garbage":
                    content = b"<html><body>502 Bad Gateway</body></html>\x00\xff"
                elif active and active.fault == "truncate":
                    content = content[: max(1, len(content) // 2)]
                elif active and active.fault == "malformed_page":
                    content = active.body or b'{"payments": "not a list", "next_page_token": 7}'
                elif active and active.fault == "drop_one_score":
                    content = _drop_one_score(content, content_type)
                elif active and active.fault == "nan_rows" and active.rows:
                    hit = active.rows(np.load(io.BytesIO(body), allow_pickle=False))
                    scores = np.load(io.BytesIO(content), allow_pickle=False).astype(float)
                    scores[hit] = np.nan
                    out = io.BytesIO()
                    np.save(out, scores)
                    content = out.getvalue()
                elif active and active.fault == "rewrite_payments" and active.rewrite:
                    page = json.loads(content)
                    page["payments"] = [active.rewrite(p) for p in page["payments"]]
                    content = json.dumps(page).encode()
                elif active and active.fault == "rewrite_page" and active.rewrite:
                    content = json.dumps(active.rewrite(json.loads(content))).encode()
                self.send_response(upstream.status_code)
                for key, value in upstream.headers.items():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(content)))
                if active and active.fault == "drip_headers":  # the status line onwards
                    head: list[bytes] = getattr(self, "_headers_buffer", [])  # http.server's
                    content = b"".join(head) + b"\r\n" + content
                    head.clear()
                else:
                    self.end_headers()
                # The client may have given up (its timeout): nothing left to tell it.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    if active and active.fault in ("drip", "drip_headers"):
                        self.wfile.flush()
                        for position in range(len(content)):
                            self.wfile.write(content[position : position + 1])
                            self.wfile.flush()
                            if proxy._server is None:  # stopped: stop dripping
                                break
                            time.sleep(active.delay_s)
                    else:
                        self.wfile.write(content)
                return None

        return Handler


def _drop_one_score(content: bytes, content_type: str) -> bytes:
    """The model's answer with its last score missing (npy or one-per-line csv)."""
    if "npy" in content_type:
        scores = np.load(io.BytesIO(content), allow_pickle=False)
        out = io.BytesIO()
        np.save(out, scores.ravel()[:-1])
        return out.getvalue()
    lines = content.decode().strip().splitlines()
    return ("\n".join(lines[:-1]) + "\n").encode()
