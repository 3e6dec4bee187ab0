"""The endpoint client against the real local model server, over HTTP."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import requests

from fraud_devstack.stack.generate import payments_between
from fraud_pipeline.config import REPO_ROOT, get_settings
from fraud_pipeline.ingest.payments import to_payments
from fraud_pipeline.model.artifacts import ArtifactError, load_model
from fraud_pipeline.model.tarballs import safe_extractall
from fraud_pipeline.net import free_port
from fraud_pipeline.serving.endpoint import EndpointClient, ScoringError
from fraud_pipeline.serving.model_server import BadRequest, load_booster, parse_body
from tests.support.aws import runtime_for
from tests.support.processes import stop_process
from tests.support.servers import running


@pytest.fixture(scope="module")
def matrix() -> np.ndarray:
    model = load_model()
    payments = to_payments(payments_between(datetime(2026, 3, 2), datetime(2026, 3, 2, 8)))
    return model.features(payments)


@pytest.mark.parametrize("content_type", ["application/x-npy", "text/csv"])
def test_scores_equal_in_process_booster(model_server_url, matrix, content_type):
    client = EndpointClient(
        runtime_for(model_server_url), "fraud-xgboost", content_type=content_type
    )
    result = client.predict(matrix)
    model = load_model()
    np.testing.assert_allclose(result.probabilities, model.predict(matrix), atol=1e-6)
    assert result.model_version == model.version


def test_large_matrices_are_cut_under_the_payload_limit(model_server_url, matrix):
    client = EndpointClient(runtime_for(model_server_url), "fraud-xgboost", content_type="text/csv")
    big = np.tile(matrix, (max(1, 60_000 // len(matrix)) + 1, 1))
    assert len(big) > client.batch_rows(big)  # more than one request
    assert len(client.predict(big).probabilities) == len(big)


def test_ping_and_a_bad_body_get_clear_answers(model_server_url):
    assert requests.get(f"{model_server_url}/ping", timeout=5).status_code == 200
    bad = requests.post(
        f"{model_server_url}/invocations",
        data=b"1,2,abc\n",
        headers={"Content-Type": "text/csv"},
        timeout=5,
    )
    assert bad.status_code == 400 and "cannot read" in bad.json()["message"]
    short = requests.post(
        f"{model_server_url}/invocations",
        data=b"1,2,3\n",
        headers={"Content-Type": "text/csv"},
        timeout=5,
    )
    features = len(load_model().feature_names)
    assert short.status_code == 400
    assert f"{features} features" in short.json()["message"]
    client = EndpointClient(runtime_for(model_server_url), "fraud-xgboost")
    with pytest.raises(ScoringError, match=rf"status 400.*{features} features"):
        client.predict(np.ones((2, 3)))


def test_csv_bodies_read_as_pandas_read_them(matrix):
    """numpy's parser (the server has no pandas) gives pandas' float32 matrix, NaN when empty."""
    import pandas as pd

    buffer = io.StringIO()
    np.savetxt(buffer, matrix, delimiter=",", fmt="%.9g")
    body = buffer.getvalue().encode()
    expected = pd.read_csv(io.BytesIO(body), header=None, dtype=np.float32).to_numpy()
    parsed = parse_body(body, "text/csv")
    assert parsed.dtype == np.float32 and np.array_equal(parsed, expected, equal_nan=True)
    np.testing.assert_array_equal(
        parse_body(b"1,,3\n4,5,\n", "text/csv"), [[1, np.nan, 3], [4, 5, np.nan]]
    )
    for bad in (b"1,2,abc\n", b"1,2\n3\n"):
        with pytest.raises(BadRequest, match="cannot read"):
            parse_body(bad, "text/csv")


def test_a_tarball_that_does_not_match_its_checksum_is_not_served(tmp_path):
    target = tmp_path / "artifacts"
    shutil.copytree(get_settings().artifacts_dir, target)
    with (target / "model.tar.gz").open("ab") as tarball:
        tarball.write(b"tampered")
    with pytest.raises(ArtifactError, match="SHA-256"):
        load_booster(target)


def readme_snippet() -> str:
    """The boto3 snippet of the README's Scoring section, verbatim."""
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme[readme.index("## Scoring") :]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_fresh_shell_serve_model_then_the_readme_boto3_snippet():
    """`fraud-pipeline serve-model &`, then the README's plain boto3 invoke_endpoint."""
    port = free_port()
    cli = str(Path(sys.executable).with_name("fraud-pipeline"))
    with running([cli, "serve-model", "--port", str(port)], port):
        snippet = readme_snippet().replace("127.0.0.1:8080", f"127.0.0.1:{port}")
        out = subprocess.run(
            [sys.executable, "-c", snippet],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.split()
    scores, attributes = [float(value) for value in out[:-1]], out[-1]
    assert len(scores) == 2 and all(0 <= score <= 1 for score in scores)
    assert attributes == f"model_version={load_model().version}"


def test_the_container_serve_entry_point_serves_what_sagemaker_extracts(tmp_path, matrix):
    """infra/sagemaker/serve on an extracted /opt/ml/model: version from the model's env."""
    model_dir = tmp_path / "opt-ml-model"
    with tarfile.open(get_settings().artifacts_dir / "model.tar.gz") as tar:
        safe_extractall(tar, model_dir)
    port = free_port()
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "SM_MODEL_DIR": str(model_dir),
        "SAGEMAKER_BIND_TO_PORT": str(port),
        "MODEL_SERVER_HOST": "127.0.0.1",
        "MODEL_VERSION": "from-sagemaker-model-env",
    }
    with running([str(REPO_ROOT / "infra" / "sagemaker" / "serve")], port, env):
        url = f"http://127.0.0.1:{port}"
        assert requests.get(f"{url}/ping", timeout=5).status_code == 200
        result = EndpointClient(runtime_for(url), "fraud-xgboost").predict(matrix)
    np.testing.assert_allclose(result.probabilities, load_model().predict(matrix), atol=1e-6)
    assert result.model_version == "from-sagemaker-model-env"


def _npy(matrix: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, matrix.astype(np.float32))
    return buffer.getvalue()


def _wait_for_log(log: Path, text: str, count: int = 1, timeout: float = 60) -> str:
    """The server's log once `text` appears `count` times in it (a wait, not a time budget)."""
    deadline = time.monotonic() + timeout
    while (content := log.read_text()).count(text) < count:
        assert time.monotonic() < deadline, f"no {count} x {text!r} in the server log:\n{content}"
        time.sleep(0.05)
    return content


def _response(sock: socket.socket) -> tuple[int, bytes]:
    """Status and body of one HTTP/1.1 response with a Content-Length."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the server closed the connection after {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    while len(body) < int(headers["content-length"]):
        more = sock.recv(65536)
        assert more, "the server closed the connection mid-response"
        body += more
    return int(lines[0].split()[1]), body


@pytest.mark.slow
def test_workers_from_sagemaker_env_and_sigterm_lets_a_request_in_flight_finish(tmp_path, matrix):
    """The container's entry point with SAGEMAKER_MODEL_SERVER_WORKERS=2: two worker processes.

    A request is in flight (headers sent, the server asked for the body with `100 Continue`,
    half the body sent) when SIGTERM arrives; the server waits for it: the rest of the body goes
    after the worker has logged that it waits, the scores come back, and the server exits 0.
    """
    port = free_port()
    env = {
        **os.environ,
        "SM_MODEL_DIR": str(get_settings().artifacts_dir),
        "SAGEMAKER_BIND_TO_PORT": str(port),
        "MODEL_SERVER_HOST": "127.0.0.1",
        "SAGEMAKER_MODEL_SERVER_WORKERS": "2",
        "SAGEMAKER_MODEL_SERVER_TIMEOUT": "60",
    }
    log = tmp_path / "server.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "fraud_pipeline.serving.model_server"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        started = _wait_for_log(log, "Started server process", count=2)
        workers = set(re.findall(r"Started server process \[(\d+)\]", started))
        assert len(workers) == 2 and str(server.pid) not in workers
        body = _npy(matrix)
        with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
            sock.sendall(
                b"POST /invocations HTTP/1.1\r\nHost: model\r\n"
                b"Content-Type: application/x-npy\r\nAccept: application/x-npy\r\n"
                + f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n".encode()
            )
            assert sock.recv(1024).startswith(b"HTTP/1.1 100 Continue")  # the app reads it
            sock.sendall(body[: len(body) // 2])
            server.send_signal(signal.SIGTERM)
            _wait_for_log(log, "Waiting for connections to close")
            sock.sendall(body[len(body) // 2 :])
            status, scores = _response(sock)
        assert status == 200
        np.testing.assert_allclose(
            np.load(io.BytesIO(scores)), load_model().predict(matrix), atol=1e-6
        )
        assert server.wait(timeout=60) == 0
    finally:
        stop_process(server)


def test_a_body_over_6_mb_is_refused_unread(model_server_url):
    """413 from the headers alone: the server does not read (or buffer) the oversized body."""
    port = int(model_server_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(
            b"POST /invocations HTTP/1.1\r\nHost: model\r\nContent-Type: text/csv\r\n"
            + f"Content-Length: {7 * 1024 * 1024}\r\n\r\n".encode()
        )
        status, body = _response(sock)
    assert status == 413 and "exceeds 6 MB" in json.loads(body)["message"]
