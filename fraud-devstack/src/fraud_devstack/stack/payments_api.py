"""The payments API server (`fraud-dev serve-payments`): a real-time stream of payments.

Sources: the generator (deterministic per minute, see generate.py) or the replay of a Sparkov CSV
with its order and spacing kept and its times shifted so that the stream runs through now.
Interfaces:
- `GET /transactions?start=ISO&end=ISO[&limit=N][&page_token=T]`: every payment with event time
  in [start, min(end, now)), paginated and deterministic (a re-run fetches the same payments);
  with `Lateness`, a share of the payments is served only once now >= event time + its delay,
  as real feeds deliver late (provider retries, batch posting);
- `GET /current-transactions`: the public API's format, a JSON string holding a pandas
  split-orient frame of the latest payment, Sparkov fields minus the times, plus `current_time`;
- `GET /health`.
Served by uvicorn (`serving.http_server`, as the model server); its OpenAPI description is at
`/openapi.json`, browsable at `/docs` (Swagger UI) and `/redoc`.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from fraud_pipeline import clock
from fraud_pipeline.config import get_settings
from fraud_pipeline.ingest.payments import localize, read_sparkov_csv
from fraud_pipeline.serving import http_server

Source = Callable[[pd.Timestamp, pd.Timestamp], pd.DataFrame]  # aware [start, end) -> raw rows
MAX_LIMIT = 50_000


def generator_source(seed: int = 42, rate_per_min: float = 60.0) -> Source:
    from fraud_devstack.stack.generate import payments_between

    def source(start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        return payments_between(start, end, seed=seed, rate_per_min=rate_per_min)

    return source


@dataclass(frozen=True)
class Lateness:
    """A share of the payments delivered late, each by its own delay (uniform in (0, max_s]).

    Deterministic per seed and payment (a hash of both), so a test or a re-run sees the same
    payments late by the same delays; a late payment is served for its window only once
    now >= event time + delay.
    """

    share: float
    max_s: float
    seed: int = 42

    def delays(self, trans_nums: pd.Series) -> np.ndarray:
        """Each payment's delay in seconds (0: on time)."""
        draws = np.array(
            [
                int.from_bytes(
                    hashlib.blake2b(f"{self.seed}:{t}".encode(), digest_size=8).digest(), "big"
                )
                for t in trans_nums.astype(str)
            ],
            dtype=np.uint64,
        )
        u = (draws >> np.uint64(11)).astype(np.float64) / float(1 << 53)
        late = u < self.share
        # u / share is uniform in [0, 1) among the late ones: their delay, in (0, max_s]
        return np.where(late, (1.0 - u / max(self.share, 1e-12)) * self.max_s, 0.0)

    def arrived(self, rows: pd.DataFrame, as_of: pd.Timestamp) -> np.ndarray:
        """Which rows the API has received by `as_of` (event time + delay <= as_of)."""
        if rows.empty or self.share <= 0:
            return np.ones(len(rows), dtype=bool)
        event = localize(rows["trans_date_trans_time"])  # Sparkov's unix_time is wall clock
        arrival = event + pd.to_timedelta(self.delays(rows["trans_num"]), unit="s")
        return (arrival <= as_of).to_numpy()


def replay_source(path: Path, anchor: pd.Timestamp, speed: float = 1.0) -> Source:
    """Replay a CSV in a loop: its first payment happens at `anchor`, spacing divided by `speed`."""
    return _replay(read_sparkov_csv(path), anchor, speed)


def _replay(raw: pd.DataFrame, anchor: pd.Timestamp, speed: float, tag: str = "") -> Source:
    """`raw` replayed in a loop from `anchor`; `tag` is appended to every trans_num (a replay
    at another rate is other payments)."""
    times = localize(raw["trans_date_trans_time"])
    seconds = (times - times.min()).dt.total_seconds().to_numpy()
    offsets = seconds / speed
    period = (float(seconds.max()) + 1.0) / speed  # a second between loops, as replay_rate_per_min
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
            if loop or tag:  # a payment replayed in a later loop is a new payment
                rows["trans_num"] = rows["trans_num"].astype(str) + (f"-r{loop}" if loop else "")
                rows["trans_num"] += tag
            frames.append(rows)
        return pd.concat(frames, ignore_index=True) if frames else raw.iloc[0:0]

    return source


def replay_rate_per_min(raw: pd.DataFrame) -> float:
    """Payments per minute of `raw` replayed at speed 1 (its rows over its loop's period)."""
    times = localize(raw["trans_date_trans_time"])
    period_s = (times.max() - times.min()).total_seconds() + 1.0
    return len(raw) * 60.0 / period_s


def stepped_replay_source(
    path: Path, anchor: pd.Timestamp, rates_per_min: list[float], step_minutes: int
) -> Source:
    """Replay a CSV at rising rates, for the live capacity bench (`make bench-capacity`): from
    `anchor + k * step_minutes` at `rates_per_min[k]` payments a minute (the last rate on after
    the last step), nothing before `anchor`. A pure function of the window, as every source:
    a run that re-reads a window gets the same payments."""
    raw = read_sparkov_csv(path)
    base = replay_rate_per_min(raw)
    step = pd.Timedelta(minutes=step_minutes)
    steps = [
        (anchor + k * step, _replay(raw, anchor + k * step, rate / base, f"-s{k}"))
        for k, rate in enumerate(rates_per_min)
    ]

    def source(start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        frames = []
        for k, (begin, replay) in enumerate(steps):
            until = steps[k + 1][0] if k + 1 < len(steps) else max(end, begin)
            lo, hi = max(start, begin), min(end, until)
            if lo < hi:
                frames.append(replay(lo, hi))
        return pd.concat(frames, ignore_index=True) if frames else raw.iloc[0:0]

    return source


def _page_body(rows: pd.DataFrame, fields: dict[str, Any]) -> bytes:
    """A page as JSON: the rows encoded once, by pandas (a decode and re-encode through Python
    objects cost the server twice as much as the generator)."""
    records = rows.to_json(orient="records", date_format="iso")
    return f'{{"payments":{records},{json.dumps(fields)[1:]}'.encode()


class Page(BaseModel):
    """One page of `GET /transactions`."""

    payments: list[dict[str, Any]] = Field(
        description="Sparkov rows (trans_num, cc_num, amt, merchant, category, trans_date_trans_time "
        "in business time, unix_time, cardholder and merchant fields, is_fraud), in event order"
    )
    next_page_token: str | None = Field(
        description="pass it as page_token for the next page; null on the last page"
    )
    total: int = Field(description="payments in the whole window")
    end: str = Field(
        description="the end actually served (ISO): earlier than the requested end when the "
        "stream has not got there yet"
    )


class Problem(BaseModel):
    error: str


_ERRORS: dict[int | str, dict[str, Any]] = {
    "4XX": {
        "model": Problem,
        "description": "400: a bad window, limit or page token; 404: no such route",
    }
}
_DESCRIPTION = (
    "A real-time stream of card payments for the fraud pipeline's local stack: generated "
    "(deterministic per minute) or a Sparkov CSV replayed with its times shifted to now. "
    "`/transactions` serves a time window page by page, `/current-transactions` the latest "
    'payment in the public API format. Errors are JSON: `{"error": "why"}`.'
)
_BAD_WINDOW = (
    "need start and end as ISO times with a UTC offset, limit as an integer and the page_token "
    "of the previous page"
)


def build_app(source: Source, lateness: Lateness | None = None) -> FastAPI:
    """The API over `source`, with its OpenAPI description at /openapi.json and pages at /docs
    and /redoc (served from the package, no CDN: the dev stack works offline). `lateness`:
    some payments are served late (None: every payment as soon as its time has come)."""
    lock = threading.Lock()  # the source caches are not thread-safe; handlers run in threads
    cache: dict[tuple[pd.Timestamp, pd.Timestamp], pd.DataFrame] = {}
    app = FastAPIOffline(
        title="Payments API (simulator)",
        version="1",
        description=_DESCRIPTION,
        responses=_ERRORS,
    )

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, error: RequestValidationError) -> JSONResponse:
        reasons = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        return JSONResponse({"error": f"{_BAD_WINDOW} ({reasons})"}, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        message = f"no route {request.url.path}" if error.status_code == 404 else error.detail
        return JSONResponse({"error": message}, status_code=error.status_code)

    @app.get("/health", summary="Liveness")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/transactions", response_model=Page, summary="Payments of a time window, paginated")
    def transactions(
        start: Annotated[str, Query(description="window start, ISO 8601 with a UTC offset")],
        end: Annotated[str, Query(description="window end (excluded), ISO with a UTC offset")],
        limit: Annotated[
            int,
            Query(
                ge=1, description=f"payments per page (more than {MAX_LIMIT:,} gives {MAX_LIMIT:,})"
            ),
        ] = 1000,
        page_token: Annotated[
            str | None, Query(description="next_page_token of the last page")
        ] = None,
    ) -> Response:
        """Every payment with event time in [start, min(end, now)), deterministic: a re-run
        fetches the same payments. The first page fixes the end served; its token carries it."""
        try:
            lo, hi = pd.Timestamp(start), pd.Timestamp(end)
            offset, _, served = (page_token or "0").partition(":")
            served_ms, _, as_of_ms = served.partition(":")
            offset_rows = int(offset)
            now = pd.Timestamp(clock.now()).floor("ms")
            as_of = pd.Timestamp(int(as_of_ms), unit="ms", tz="UTC") if as_of_ms else now
        except ValueError as error:
            return JSONResponse({"error": f"{_BAD_WINDOW} ({error})"}, status_code=400)
        if lo.tzinfo is None or hi.tzinfo is None:
            return JSONResponse({"error": "start and end must carry a UTC offset"}, status_code=400)
        limit = min(limit, MAX_LIMIT)
        # Never serve the future. The first page fixes the end actually served (and the instant
        # late payments are judged at), and the page token carries both, so later pages cut the
        # same window even as time moves on.
        hi = pd.Timestamp(int(served_ms), unit="ms", tz="UTC") if served_ms else min(hi, now)
        with lock:
            if (lo, hi) not in cache:  # every page of one window is cut from one computation
                cache.clear()
                cache[(lo, hi)] = source(lo, hi) if lo < hi else pd.DataFrame()
            rows = cache[(lo, hi)]
        if lateness is not None and len(rows):
            rows = rows[lateness.arrived(rows, as_of)]
        more = offset_rows + limit < len(rows)
        token = f"{offset_rows + limit}:{int(hi.timestamp() * 1000)}"
        fields = {
            "next_page_token": f"{token}:{int(as_of.timestamp() * 1000)}" if more else None,
            "total": len(rows),
            "end": hi.isoformat(),
        }
        body = _page_body(rows.iloc[offset_rows : offset_rows + limit], fields)
        return Response(body, media_type="application/json")  # no model validation of 50k rows

    @app.get(
        "/current-transactions",
        response_model=str,
        summary="The latest payment, in the public API's format",
    )
    def current_transactions() -> JSONResponse:
        """A JSON string holding a pandas split-orient frame of the latest payment: Sparkov
        fields minus the times, plus `current_time` (epoch milliseconds)."""
        now = pd.Timestamp(clock.now())
        with lock:
            rows = source(now - pd.Timedelta(minutes=5), now)
        latest = rows.tail(1).drop(columns=["trans_date_trans_time", "unix_time"], errors="ignore")
        latest = latest.assign(current_time=int(now.timestamp() * 1000))
        return JSONResponse(str(latest.to_json(orient="split", index=True)))

    return app


def main(
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    source: Literal["generator", "csv"] = "generator",
    csv: str | Path | None = None,
    rate: float = 60.0,
    speed: float = 1.0,
    seed: int = 42,
    late_share: float | None = None,
    rates: list[float] | None = None,
    step_minutes: int = 10,
    replay_from: str | None = None,
) -> int:
    """`fraud-dev serve-payments`: serve payments until interrupted.

    `source="generator"` makes `rate` payments per minute from `seed`; `source="csv"` replays
    the Sparkov file `csv` from now on, `speed` times faster than real time; with `rates`,
    from `replay_from` (default the next minute) at each rate for `step_minutes` in turn (see
    `stepped_replay_source`). `late_share`
    (default PAYMENTS_LATE_SHARE) of them arrive late, by up to PAYMENTS_LATE_DELAY_MAX_S.
    """
    if source == "csv":
        if not csv:
            print("serve-payments: --source csv needs --csv FILE", flush=True)
            return 2
        anchor = pd.Timestamp(replay_from) if replay_from else pd.Timestamp(clock.now()).ceil("min")
        if rates:
            payments = stepped_replay_source(Path(csv), anchor, rates, step_minutes)
        else:
            payments = replay_source(Path(csv), pd.Timestamp(clock.now()).floor("min"), speed)
    else:
        payments = generator_source(seed, rate)
    settings = get_settings()
    share = settings.payments_late_share if late_share is None else late_share
    lateness = Lateness(share, settings.payments_late_delay_max_s, seed) if share > 0 else None
    now = pd.Timestamp(clock.now())
    payments(now - pd.Timedelta(minutes=1), now)  # warm up (learn the generator, read the CSV)
    late = f", {share:.1%} late by up to {lateness.max_s:.0f} s" if lateness else ""
    print(
        f"payments API on http://{host}:{port} ({source}{late}), OpenAPI page at /docs", flush=True
    )
    app = build_app(payments, lateness)
    return http_server.run(http_server.config(app, host, port, timeout_s=10))
