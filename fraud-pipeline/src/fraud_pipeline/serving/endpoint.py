"""The SageMaker endpoint client the DAG scores with (boto3 `sagemaker-runtime` invoke_endpoint).

The matrix is cut into batches under SageMaker's payload limits (4 MB serverless, 6 MB real-time)
and sent concurrently. Each batch is retried (tenacity) with exponential backoff and full jitter on
throttling, 5xx and timeouts, within one overall wall-clock deadline (SCORING_DEADLINE_S) that
holds even against a server that drips its answer: bodies are read as they arrive with the clock
checked between reads, and the caller stops waiting for a stuck call at the deadline.
A response must hold exactly one finite probability in [0, 1] per row.
One row never blocks the others: a batch the endpoint refuses as a bad request (400/413/422) is
cut in halves until the rows it refuses are found, and a row scored outside [0, 1] is refused
alone; `ScoreResult.refused` names them (the pipeline quarantines them). If every row is refused,
the endpoint is at fault, not the rows: the call fails and the payments stay pending.
Errors name the endpoint, the status and the batch; `EndpointUnavailable` tells the pipeline to
keep the payments pending (the endpoint may be switched off to save money).
"""

from __future__ import annotations

import io
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tenacity

from fraud_pipeline.config import Settings, get_settings

log = logging.getLogger(__name__)

# Serverless endpoints accept 4 MB per request and response (real-time ones 6 MB): stay under both.
MAX_PAYLOAD_BYTES = 3_500_000
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
RETRYABLE_CODES = frozenset(
    {
        "ThrottlingException",
        "ServiceUnavailable",
        "InternalFailure",
        "ModelNotReadyException",
        "ModelError",
    }
)


# A bad request is about the rows sent (bisect to find them); 401/403/404/415 are about the call.
ROW_REFUSAL_STATUS = frozenset({400, 413, 422})
# Calls one batch may spend finding its refused rows (~8 bad rows in a batch of thousands).
MAX_ISOLATION_CALLS = 64

# How long past the deadline the caller waits for a worker's own verdict before it stops.
HARD_STOP_GRACE_S = 1.0


class ScoringError(RuntimeError):
    """Scoring failed for good: says which endpoint, which batch and what status."""

    def __init__(
        self, message: str, *, endpoint: str, batch: str, status: int | str | None
    ) -> None:
        super().__init__(f"endpoint {endpoint!r}, batch {batch}, status {status}: {message}")
        self.endpoint, self.batch, self.status = endpoint, batch, status


class RowsRefused(ScoringError):
    """The endpoint answered about the rows: refused the request (4xx) or scored some outside
    [0, 1] (`bad`: which rows, when the count of scores was right)."""

    def __init__(
        self,
        message: str,
        *,
        endpoint: str,
        batch: str,
        status: int | str | None,
        scores: np.ndarray | None = None,
        version: str | None = None,
    ) -> None:
        super().__init__(message, endpoint=endpoint, batch=batch, status=status)
        self.reason, self.scores, self.version = message, scores, version


class EndpointUnavailable(ScoringError):
    """The endpoint could not be reached or kept failing: payments stay pending, retry later."""


class ModelVersionMismatch(RuntimeError):
    """The endpoint scored with another model version than the one whose artifacts (transformer,
    threshold, reasons) the pipeline uses: storing those scores would mix two models, so the
    batch stays pending and the run fails, naming both versions."""

    def __init__(self, served: str | None, expected: str) -> None:
        super().__init__(
            f"the endpoint serves model {served or 'unknown'} but the features, threshold and "
            f"reasons are model {expected}'s: nothing stored, the payments stay pending until "
            "both are the same version (`fraud-pipeline model rollout` serves the champion)"
        )
        self.served, self.expected = served, expected


def check_served_version(served: str | None, expected: str) -> None:
    """Raise ModelVersionMismatch unless the endpoint's `model_version` attribute is `expected`,
    the version whose artifacts built the features (checked on every scored batch)."""
    if served != expected:
        log.error("model version mismatch: served %s, expected %s", served, expected)
        raise ModelVersionMismatch(served, expected)


@dataclass
class ScoreResult:
    probabilities: np.ndarray  # NaN for a refused row
    model_version: str | None
    refused: dict[int, str] = field(default_factory=dict)  # row -> why the endpoint refused it


def _status_of(error: Exception) -> tuple[int | str | None, bool]:
    """(status, retryable) of a botocore/HTTP error."""
    from botocore.exceptions import (
        ClientError,
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        ReadTimeoutError,
    )  # heavy; only when AWS is used

    if isinstance(error, ClientError):
        response = error.response
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        original = response.get("OriginalStatusCode")  # ModelError carries the container's status
        code = response.get("Error", {}).get("Code", "")
        status = original or status
        retryable = status in RETRYABLE_STATUS or (code in RETRYABLE_CODES and status != 400)
        return status or code, bool(retryable)
    if isinstance(error, ReadTimeoutError | ConnectTimeoutError):
        return "timeout", True
    if isinstance(error, EndpointConnectionError | ConnectionClosedError):
        return "unreachable", True
    return type(error).__name__, False


class DeadlineExceeded(RuntimeError):
    """A response was still arriving when the call's overall deadline passed."""


class _PastDeadline(tenacity.stop.stop_base):
    """Stop retrying when the next wait would end past the overall deadline (monotonic)."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        return time.monotonic() + (retry_state.upcoming_sleep or 0.0) > self.deadline


class _Transient(Exception):
    """A call failed in a way a retry may mend (the retry policy's only trigger)."""

    def __init__(self, status: int | str | None, error: Exception) -> None:
        super().__init__(f"{status}: {error}")
        self.status, self.error = status, error


_READ_SIZE = 65_536


def _read_body(body: Any, deadline: float, deadline_s: float) -> bytes:
    """The response body, read as it arrives with the clock checked between reads.

    botocore's read timeout is per read: a server that drips one byte a second never trips it.
    urllib3's `read1` returns whatever has arrived, so a drip is noticed at its next byte.
    """
    raw = getattr(body, "_raw_stream", None)
    if raw is None or not hasattr(raw, "read1"):
        return bytes(body.read())
    from botocore.exceptions import ReadTimeoutError, ResponseStreamingError  # AWS only; heavy
    from urllib3.exceptions import ProtocolError  # botocore's transport
    from urllib3.exceptions import ReadTimeoutError as Urllib3ReadTimeout  # botocore's transport

    chunks, size = [], 0
    while True:
        try:  # the errors botocore's own StreamingBody.read would raise
            chunk = raw.read1(_READ_SIZE)
        except Urllib3ReadTimeout as error:
            raise ReadTimeoutError(endpoint_url=error.url, error=error) from error
        except ProtocolError as error:
            raise ResponseStreamingError(error=error) from error
        if not chunk:
            break
        size += len(chunk)
        chunks.append(chunk)
        if time.monotonic() > deadline:
            raise DeadlineExceeded(
                f"scoring exceeded its {deadline_s:g} s deadline "
                f"(response still arriving, {size:,} bytes so far)"
            )
    return b"".join(chunks)


def runtime_client(settings: Settings) -> Any:
    """boto3 sagemaker-runtime with our own retries (botocore's are switched off)."""
    import boto3  # heavy; only when AWS is used
    from botocore.config import Config  # heavy; only when AWS is used

    config = Config(
        retries={"total_max_attempts": 1},
        connect_timeout=5,
        read_timeout=60,
        max_pool_connections=16,
    )
    session = boto3.Session(region_name=settings.aws_region)
    local = settings.sagemaker_endpoint_url
    if local and session.get_credentials() is None:
        # The local stand-in checks no signature, but botocore insists on signing.
        session = boto3.Session(
            region_name=settings.aws_region,
            aws_access_key_id="local",
            aws_secret_access_key="local",  # noqa: S106 (not a secret: no signature is checked)
        )
    return session.client("sagemaker-runtime", endpoint_url=local, config=config)


class EndpointClient:
    """Scores feature matrices on one SageMaker endpoint."""

    def __init__(
        self,
        runtime: Any,
        endpoint_name: str,
        *,
        content_type: str = "application/x-npy",
        concurrency: int = 4,
        max_attempts: int = 5,
        base_delay_s: float = 0.2,
        max_delay_s: float = 10.0,
        deadline_s: float = 120.0,
        max_payload_bytes: int = MAX_PAYLOAD_BYTES,
    ) -> None:
        self.runtime, self.endpoint = runtime, endpoint_name
        self.content_type, self.concurrency = content_type, concurrency
        self.max_attempts, self.base_delay_s, self.max_delay_s = (
            max_attempts,
            base_delay_s,
            max_delay_s,
        )
        self.deadline_s, self.max_payload_bytes = deadline_s, max_payload_bytes

    @classmethod
    def from_settings(cls, settings: Settings | None = None, runtime: Any = None) -> EndpointClient:
        settings = settings or get_settings()
        return cls(
            runtime or runtime_client(settings),
            settings.sagemaker_endpoint_name,
            content_type=settings.scoring_content_type,
            deadline_s=settings.scoring_deadline_s,
        )

    # -- encoding -----------------------------------------------------------------------------
    def _encode(self, rows: np.ndarray) -> bytes:
        if self.content_type == "text/csv":
            buffer = io.StringIO()
            np.savetxt(buffer, rows, delimiter=",", fmt="%.9g")
            return buffer.getvalue().encode()
        buffer_b = io.BytesIO()
        np.save(buffer_b, np.ascontiguousarray(rows, dtype=np.float32))
        return buffer_b.getvalue()

    def _decode(self, body: bytes, content_type: str) -> np.ndarray:
        if "npy" in content_type:
            return np.asarray(
                np.load(io.BytesIO(body), allow_pickle=False), dtype=np.float64
            ).ravel()
        text = body.decode().strip()
        return (
            np.array([float(v) for v in text.replace(",", "\n").split()]) if text else np.empty(0)
        )

    def batch_rows(self, matrix: np.ndarray) -> int:
        """Rows per request so that one payload stays under the limit, whatever the values:
        4 bytes a value in npy (+ its 128-byte header); in CSV a float32 prints at most 16
        ("-1.23456787e-37,"), 17 counted for margin."""
        bytes_per_row = matrix.shape[1] * (4 if self.content_type != "text/csv" else 17) + 2
        return max(1, self.max_payload_bytes // bytes_per_row)

    # -- calls --------------------------------------------------------------------------------
    def _invoke(
        self, rows: np.ndarray, label: str, deadline: float
    ) -> tuple[np.ndarray, str | None]:
        """One batch's scores and model version, retried by `_retrying` on transient errors."""
        body = self._encode(rows)
        retrying = self._retrying(label, deadline)
        try:
            return retrying(self._call_once, body, rows, label, deadline)
        except _Transient as transient:
            attempts = retrying.statistics.get("attempt_number", 1)
            raise EndpointUnavailable(
                f"gave up after {attempts} attempts: {transient.error}",
                endpoint=self.endpoint,
                batch=label,
                status=transient.status,
            ) from transient.error

    def _retrying(self, label: str, deadline: float) -> tenacity.Retrying:
        """The retry policy: only transient errors (throttling, 5xx, timeouts, unreachable);
        full jitter, uniform in [0, min(max_delay_s, base_delay_s * 2**attempt)]; at most
        max_attempts calls, and never a wait that would end past the overall deadline."""

        def say_retry(state: tenacity.RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            status = error.status if isinstance(error, _Transient) else error
            log.warning(
                "endpoint %s batch %s: %s (attempt %d), retrying in %.2f s",
                self.endpoint,
                label,
                status,
                state.attempt_number,
                state.upcoming_sleep,
            )

        return tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(_Transient),
            wait=tenacity.wait_random_exponential(
                multiplier=2 * self.base_delay_s, max=self.max_delay_s
            ),
            stop=tenacity.stop_any(
                tenacity.stop_after_attempt(self.max_attempts), _PastDeadline(deadline)
            ),
            before_sleep=say_retry,
            reraise=True,
        )

    def _call_once(
        self, body: bytes, rows: np.ndarray, label: str, deadline: float
    ) -> tuple[np.ndarray, str | None]:
        """One invoke_endpoint call: scores and version, or the error classified."""
        try:
            response = self.runtime.invoke_endpoint(
                EndpointName=self.endpoint,
                Body=body,
                ContentType=self.content_type,
                Accept=self.content_type,
            )
            payload = _read_body(response["Body"], deadline, self.deadline_s)
        except DeadlineExceeded as error:
            raise EndpointUnavailable(
                str(error), endpoint=self.endpoint, batch=label, status="deadline"
            ) from error
        except Exception as error:
            status, retryable = _status_of(error)
            if status in ROW_REFUSAL_STATUS:
                raise RowsRefused(
                    str(error), endpoint=self.endpoint, batch=label, status=status
                ) from error
            if not retryable:
                raise ScoringError(
                    str(error), endpoint=self.endpoint, batch=label, status=status
                ) from error
            raise _Transient(status, error) from error
        try:
            scores = self._decode(payload, response.get("ContentType", self.content_type))
        except (ValueError, EOFError, OSError) as error:
            raise ScoringError(
                f"unreadable response ({error})", endpoint=self.endpoint, batch=label, status=200
            ) from error
        if len(scores) != len(rows):
            raise ScoringError(
                f"{len(scores)} scores came back for {len(rows)} rows",
                endpoint=self.endpoint,
                batch=label,
                status=200,
            )
        attributes = response.get("CustomAttributes") or ""
        version = (
            attributes.split("model_version=", 1)[1] if "model_version=" in attributes else None
        )
        if not np.all((scores >= 0) & (scores <= 1)):  # NaN fails both
            raise RowsRefused(
                "scored outside [0, 1]",
                endpoint=self.endpoint,
                batch=label,
                status=200,
                scores=scores,
                version=version,
            )
        return scores, version

    def _score_isolating(
        self, rows: np.ndarray, label: str, deadline: float
    ) -> tuple[np.ndarray, str | None, dict[int, str]]:
        """(scores, version, refused rows) of one batch: the rows the endpoint refuses are
        found by halving the batch, within MAX_ISOLATION_CALLS calls (else the batch fails)."""
        calls = 0

        def score(start: int, stop: int) -> tuple[np.ndarray, str | None, dict[int, str]]:
            nonlocal calls
            calls += 1
            try:
                scores, version = self._invoke(rows[start:stop], label, deadline)
                return scores, version, {}
            except RowsRefused as error:
                if error.scores is not None:  # one verdict per row: refuse the bad ones
                    bad = ~((error.scores >= 0) & (error.scores <= 1))
                    scores = np.where(bad, np.nan, error.scores)
                    why = f"{error.reason} ({error.scores[bad][0]!r})"
                    return scores, error.version, {start + int(i): why for i in np.flatnonzero(bad)}
                if stop - start == 1:
                    return (
                        np.full(1, np.nan),
                        None,
                        {start: f"status {error.status}: {error.reason}"},
                    )
                if calls + 2 > MAX_ISOLATION_CALLS:
                    raise ScoringError(
                        f"refused the batch; its bad rows not found in {calls} calls: "
                        f"{error.reason}",
                        endpoint=self.endpoint,
                        batch=label,
                        status=error.status,
                    ) from error
                middle = (start + stop) // 2
                low, high = score(start, middle), score(middle, stop)
                versions = {v for v in (low[1], high[1]) if v is not None}
                return (
                    np.concatenate([low[0], high[0]]),
                    versions.pop() if versions else None,
                    {**low[2], **high[2]},
                )

        return score(0, len(rows))

    def predict(self, matrix: np.ndarray) -> ScoreResult:
        """One probability per row of `matrix`, in order."""
        matrix = np.asarray(matrix, dtype=np.float32)
        if len(matrix) == 0:
            return ScoreResult(np.empty(0), None)
        deadline = time.monotonic() + self.deadline_s
        size = self.batch_rows(matrix)
        starts = list(range(0, len(matrix), size))
        labels = [
            f"{i + 1}/{len(starts)} (rows {s}-{min(s + size, len(matrix)) - 1})"
            for i, s in enumerate(starts)
        ]
        pool = ThreadPoolExecutor(max_workers=min(self.concurrency, len(starts)))
        waited = True
        try:
            futures = [
                pool.submit(self._score_isolating, matrix[s : s + size], label, deadline)
                for s, label in zip(starts, labels, strict=True)
            ]
            results = []
            for future, label in zip(futures, labels, strict=True):
                try:
                    # A hard stop: the worker may be stuck in a call that never returns. The
                    # grace lets a worker whose last attempt was still answering give its own,
                    # truer verdict (e.g. "status 503") rather than a bare "deadline".
                    remaining = max(0.0, deadline - time.monotonic())
                    results.append(future.result(timeout=remaining + HARD_STOP_GRACE_S))
                except FutureTimeout as error:
                    waited = False
                    raise EndpointUnavailable(
                        f"scoring exceeded its {self.deadline_s:g} s deadline "
                        f"({len(results)} of {len(futures)} batches scored)",
                        endpoint=self.endpoint,
                        batch=label,
                        status="deadline",
                    ) from error
        except ScoringError as error:
            log.error("%d rows not scored, their payments stay pending: %s", len(matrix), error)
            raise
        finally:  # one batch failed for good: the run fails, do not send the batches not yet sent
            # Past the deadline, do not wait for a stuck worker: it stops at its next read.
            pool.shutdown(wait=waited, cancel_futures=True)
        refused = {
            start + row: why
            for start, (_, _, batch_refused) in zip(starts, results, strict=True)
            for row, why in batch_refused.items()
        }
        if len(refused) == len(matrix):  # the endpoint is at fault, not every row
            refusal = ScoringError(
                f"refused every row: {next(iter(refused.values()))}",
                endpoint=self.endpoint,
                batch="all",
                status="refused",
            )
            log.error("%d rows not scored, their payments stay pending: %s", len(matrix), refusal)
            raise refusal
        versions = {version for scores, version, _ in results if not np.isnan(scores).all()}
        if len(versions) > 1:
            raise ScoringError(
                f"batches were scored by different models {sorted(map(str, versions))}",
                endpoint=self.endpoint,
                batch="all",
                status=200,
            )
        if refused:
            log.warning(
                "endpoint %s refused %d of %d rows, the others are scored: %s",
                self.endpoint,
                len(refused),
                len(matrix),
                "; ".join(sorted(set(refused.values())))[:300],
            )
        return ScoreResult(
            np.concatenate([scores for scores, _, _ in results]), versions.pop(), refused
        )
