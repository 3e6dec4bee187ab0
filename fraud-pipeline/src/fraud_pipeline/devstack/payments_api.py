"""The payments API server (`fraud-pipeline serve-payments`): a real-time stream of payments.

Sources: the generator (deterministic per minute, see generate.py) or the replay of a Sparkov CSV
with its order and spacing kept and its times shifted so that the stream runs through now.
Interfaces:
- `GET /transactions?start=ISO&end=ISO[&limit=N][&page_token=T]`: every payment with event time
  in [start, min(end, now)), paginated and deterministic (a re-run fetches the same payments);
- `GET /current-transactions`: the public API's format, a JSON string holding a pandas
  split-orient frame of the latest payment, Sparkov fields minus the times, plus `current_time`;
- `GET /health`.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pandas as pd

from fraud_pipeline import clock
from fraud_pipeline.config import get_settings
from fraud_pipeline.ingest.payments import localize, read_sparkov_csv

log = logging.getLogger(__name__)

Source = Callable[[pd.Timestamp, pd.Timestamp], pd.DataFrame]  # aware [start, end) -> raw rows
MAX_LIMIT = 50_000


def generator_source(seed: int = 42, rate_per_min: float = 60.0) -> Source:
    from fraud_pipeline.devstack.generate import payments_between

    def source(start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        return payments_between(start, end, seed=seed, rate_per_min=rate_per_min)

    return source


def replay_source(path: Path, anchor: pd.Timestamp, speed: float = 1.0) -> Source:
    """Replay a CSV in a loop: its first payment happens at `anchor`, spacing divided by `speed`."""
    raw = read_sparkov_csv(path)
    times = localize(raw["trans_date_trans_time"])
    offsets = ((times - times.min()).dt.total_seconds() / speed).to_numpy()
    period = float(offsets.max()) + 1.0
    tz = get_settings().business_tz

    def source(start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        lo, hi = (start - anchor).total_seconds(), (end - anchor).total_seconds()
        frames = []
        for loop in range(int(np.floor(lo / period)), int(np.ceil(hi / period)) + 1):
            shifted = offsets + loop * period
            rows = raw[(shifted >= lo) & (shifted < hi)].copy()
            if rows.empty:
                continue
            event = anchor + pd.to_timedelta(shifted[rows.index], unit="s")
            rows["trans_date_trans_time"] = event.tz_convert(tz).strftime("%Y-%m-%d %H:%M:%S")
            rows["unix_time"] = (event.astype("int64") // 10**9).to_numpy() if len(event) else []
            if loop:  # a payment replayed in a later loop is a new payment
                rows["trans_num"] = rows["trans_num"].astype(str) + f"-r{loop}"
            frames.append(rows)
        return pd.concat(frames, ignore_index=True) if frames else raw.iloc[0:0]

    return source


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return json.loads(frame.to_json(orient="records", date_format="iso"))


def make_handler(source: Source) -> type[BaseHTTPRequestHandler]:
    lock = threading.Lock()  # the source caches are not thread-safe
    cache: dict[tuple[pd.Timestamp, pd.Timestamp], pd.DataFrame] = {}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            log.debug(format, *args)

        def _json(self, status: int, payload: Any) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            try:
                if url.path == "/health":
                    self._json(200, {"status": "ok"})
                elif url.path == "/transactions":
                    self._json(200, self._window(query))
                elif url.path == "/current-transactions":
                    self._json(200, self._current())
                else:
                    self._json(404, {"error": f"no route {url.path}"})
            except ValueError as error:
                self._json(400, {"error": str(error)})

        def _window(self, query: dict[str, str]) -> dict[str, Any]:
            try:
                start = pd.Timestamp(query["start"])
                end = pd.Timestamp(query["end"])
                limit = min(int(query.get("limit", 1000)), MAX_LIMIT)
                offset, _, served_ms = query.get("page_token", "0").partition(":")
                offset_rows = int(offset)
            except (KeyError, ValueError) as error:
                raise ValueError(
                    f"need start and end as ISO times, limit as an integer and the page_token "
                    f"of the previous page ({error})"
                ) from error
            if start.tzinfo is None or end.tzinfo is None:
                raise ValueError("start and end must carry a UTC offset")
            # Never serve the future. The first page fixes the end actually served, and the
            # page token carries it, so later pages cut the same window even as time moves on.
            if served_ms:
                end = pd.Timestamp(int(served_ms), unit="ms", tz="UTC")
            else:
                end = min(end, pd.Timestamp(clock.now()).floor("ms"))
            key = (start, end)
            with lock:
                if key not in cache:  # every page of one window is cut from one computation
                    cache.clear()
                    cache[key] = source(start, end) if start < end else pd.DataFrame()
                rows = cache[key]
            page = rows.iloc[offset_rows : offset_rows + limit]
            more = offset_rows + limit < len(rows)
            token = f"{offset_rows + limit}:{int(end.timestamp() * 1000)}"
            return {
                "payments": _records(page),
                "next_page_token": token if more else None,
                "total": len(rows),
                "end": end.isoformat(),  # < the requested end: the API has not got there yet
            }

        def _current(self) -> str:
            now = pd.Timestamp(clock.now())
            with lock:
                rows = source(now - pd.Timedelta(minutes=5), now)
            latest = rows.tail(1).drop(
                columns=["trans_date_trans_time", "unix_time"], errors="ignore"
            )
            latest = latest.assign(current_time=int(now.timestamp() * 1000))
            return str(latest.to_json(orient="split", index=True))

    return Handler


def build_server(source: Source, host: str = "127.0.0.1", port: int = 8000) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((host, port), make_handler(source))
    server.daemon_threads = True
    return server


def main(
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    source: Literal["generator", "csv"] = "generator",
    csv: str | Path | None = None,
    rate: float = 60.0,
    speed: float = 1.0,
    seed: int = 42,
) -> int:
    """`fraud-pipeline serve-payments`: serve payments until interrupted.

    `source="generator"` makes `rate` payments per minute from `seed`; `source="csv"` replays
    the Sparkov file `csv` from now on, `speed` times faster than real time.
    """
    if source == "csv":
        if not csv:
            print("serve-payments: --source csv needs --csv FILE", flush=True)
            return 2
        payments = replay_source(Path(csv), pd.Timestamp(clock.now()).floor("min"), speed)
    else:
        payments = generator_source(seed, rate)
    now = pd.Timestamp(clock.now())
    payments(now - pd.Timedelta(minutes=1), now)  # warm up (learn the generator, read the CSV)
    server = build_server(payments, host, port)
    print(f"payments API on http://{host}:{port} ({source})", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0
