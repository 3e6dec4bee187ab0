"""The client against a real, misbehaving HTTP server: retries happen, final errors are clear."""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from fraud_pipeline.net import free_port
from fraud_pipeline.serving.endpoint import EndpointClient, EndpointUnavailable, ScoringError
from tests.support.aws import runtime_for

Reply = Callable[[BaseHTTPRequestHandler, int], None]


def _npy(values) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(values, dtype=np.float64))
    return buffer.getvalue()


def status(code: int, error: str, **fields: object) -> Reply:
    def reply(handler: BaseHTTPRequestHandler, rows: int) -> None:
        body = json.dumps({"message": f"injected {code}", **fields}).encode()
        handler.send_response(code)
        handler.send_header("x-amzn-ErrorType", error)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return reply


def scores(
    count_delta: int = 0, garbage: bool = False, delay: float = 0.0, empty: bool = False
) -> Reply:
    def reply(handler: BaseHTTPRequestHandler, rows: int) -> None:
        time.sleep(delay)
        body = b"\x00not numpy" if garbage else _npy(np.full(rows + count_delta, 0.25))
        body = b"" if empty else body
        handler.send_response(200)
        handler.send_header("Content-Type", "application/x-npy")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return reply


class Script:
    """Replies in order (the last one repeats); counts requests."""

    def __init__(self, *replies: Reply) -> None:
        self.replies, self.calls = list(replies), 0

    def next(self) -> Reply:
        self.calls += 1
        return self.replies[min(self.calls, len(self.replies)) - 1]


@pytest.fixture
def faulty() -> Iterator[Callable[..., tuple[str, Script]]]:
    servers = []

    def start(*replies: Reply) -> tuple[str, Script]:
        script = Script(*replies)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                rows = len(np.load(io.BytesIO(body)))
                script.next()(self, rows)

        port = free_port()
        server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{port}", script

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def client(url: str, read_timeout: float = 5.0, attempts: int = 4) -> EndpointClient:
    return EndpointClient(
        runtime_for(url, read_timeout),
        "fraud-xgboost",
        max_attempts=attempts,
        base_delay_s=0.01,
        max_delay_s=0.05,
        deadline_s=20,
    )


ROWS = np.ones((3, 35), dtype=np.float32)


def test_throttling_and_5xx_are_retried_until_success(faulty):
    url, script = faulty(
        status(429, "ThrottlingException"),
        status(500, "ModelError"),
        status(503, "ServiceUnavailable"),
        scores(),
    )
    result = client(url).predict(ROWS)
    assert script.calls == 4
    np.testing.assert_allclose(result.probabilities, [0.25] * 3)


def test_an_endpoint_that_stays_down_fails_clearly_after_its_retries(faulty, caplog):
    url, script = faulty(status(503, "ServiceUnavailable"))
    with (
        caplog.at_level(logging.WARNING, logger="fraud_pipeline.serving.endpoint"),
        pytest.raises(EndpointUnavailable) as error,
    ):
        client(url, attempts=3).predict(ROWS)
    assert script.calls == 3
    message = str(error.value)
    assert "'fraud-xgboost'" in message and "status 503" in message and "batch 1/1" in message
    assert "gave up after 3 attempts" in message
    # Full jitter: the wait after attempt n is uniform in [0, min(max_delay, base * 2**n)].
    waits = [(r.args[3], r.args[4]) for r in caplog.records if "retrying in" in r.getMessage()]
    assert [attempt for attempt, _ in waits] == [1, 2]
    assert all(0 <= wait <= min(0.05, 0.01 * 2**attempt) for attempt, wait in waits), waits


def test_a_slow_endpoint_times_out_and_is_retried(faulty):
    url, script = faulty(scores(delay=1.5), scores())
    result = client(url, read_timeout=0.5).predict(ROWS)
    assert script.calls == 2 and len(result.probabilities) == 3


def test_a_wrong_number_of_scores_is_refused(faulty):
    url, _ = faulty(scores(count_delta=-1))
    with pytest.raises(ScoringError, match="2 scores came back for 3 rows"):
        client(url).predict(ROWS)


@pytest.mark.parametrize("body", [{"garbage": True}, {"empty": True}])
def test_a_garbage_or_empty_body_is_refused(faulty, body):
    url, _ = faulty(scores(**body))
    with pytest.raises(ScoringError, match=r"batch 1/1 \(rows 0-2\), status 200: unreadable"):
        client(url).predict(ROWS)


def test_a_switched_off_endpoint_is_unavailable_not_a_crash():
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens
    with pytest.raises(EndpointUnavailable, match="unreachable"):
        client(url, attempts=2).predict(ROWS)


def test_the_overall_deadline_stops_the_retries(faulty):
    url, script = faulty(status(503, "ServiceUnavailable"))
    endless = EndpointClient(
        runtime_for(url),
        "fraud-xgboost",
        max_attempts=10_000,  # ~25 min of 0.25 s backoffs without a deadline
        base_delay_s=0.1,
        max_delay_s=0.25,
        deadline_s=1.0,
    )
    started = time.monotonic()
    with pytest.raises(EndpointUnavailable, match="status 503"):
        endless.predict(ROWS)
    assert 1 < script.calls < 100
    assert time.monotonic() - started < 10


def test_a_failed_batch_stops_the_batches_not_yet_sent(faulty):
    """A call the endpoint refuses for good (403: not about the rows) fails the whole run."""
    url, script = faulty(status(403, "AccessDeniedException"))
    one_at_a_time = EndpointClient(
        runtime_for(url), "fraud-xgboost", concurrency=1, max_payload_bytes=200
    )
    assert one_at_a_time.batch_rows(ROWS) == 1  # so 50 rows = 50 requests
    with pytest.raises(ScoringError, match=r"batch 1/50 \(rows 0-0\), status 403"):
        one_at_a_time.predict(np.ones((50, 35), dtype=np.float32))
    assert script.calls < 50


def test_sagemaker_model_errors_are_retried_by_the_container_status(faulty):
    """Real SageMaker wraps container failures as 424 ModelError + OriginalStatusCode."""
    url, script = faulty(status(424, "ModelError", OriginalStatusCode=503), scores())
    assert len(client(url).predict(ROWS).probabilities) == 3
    assert script.calls == 2
    url, script = faulty(status(424, "ModelError", OriginalStatusCode=400))
    with pytest.raises(ScoringError, match="status 400") as error:
        client(url).predict(ROWS)
    # Not retried as a passing fault: each call is a half of the batch, looking for the rows
    # refused (all of them here: the endpoint is at fault, the run fails).
    assert "refused every row" in str(error.value)
    assert script.calls == 5 and not isinstance(error.value, EndpointUnavailable)
