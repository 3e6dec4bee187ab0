"""The model server: SageMaker's hosting contract around the XGBoost booster, nothing more.

`GET /ping` answers 200 once the model is loaded; `POST /invocations` (and the SageMaker Runtime
path `POST /endpoints/{name}/invocations`, so boto3 with `endpoint_url` works unchanged) takes
feature rows and returns one probability per row. Formats: `text/csv` (as SageMaker's built-in
XGBoost container) and `application/x-npy` (float32 matrix, ~10x less to parse). The same code is
the bring-your-own-container image deployed to SageMaker (infra/sagemaker/Dockerfile) and the
local stand-in (`fraud-pipeline serve-model`), so inference is identical in both.

It imports the standard library, numpy and xgboost only (plus the stdlib-only artifact checks):
no pandas, scikit-learn or pydantic, so the container installs just those two. Its settings are
parameters; `python -m fraud_pipeline.serving.model_server` (the container's `serve`) reads them
from SageMaker's environment variables, `fraud-pipeline serve-model` from its options.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

from fraud_pipeline.model.checksums import (
    METADATA_FILE,
    SAGEMAKER_FILE,
    SAGEMAKER_MEMBER,
    ArtifactError,
    check_sha256,
)
from fraud_pipeline.model.tarballs import read_member

log = logging.getLogger(__name__)

CSV = "text/csv"
NPY = "application/x-npy"
MAX_PAYLOAD = 6 * 1024 * 1024  # SageMaker real-time endpoints refuse larger requests
_INVOKE_PATH = re.compile(r"^/(?:endpoints/[A-Za-z0-9-]{1,63}/)?invocations$")
_EMPTY_FIELD = re.compile(rb"(?:^|,)[ \t]*,|,[ \t]*\r?$", re.MULTILINE)


class BadRequest(ValueError):
    """The request body cannot be scored (the client's fault: 4xx)."""


@dataclass
class LoadedBooster:
    booster: Any
    num_features: int
    version: str

    def predict(self, matrix: np.ndarray) -> np.ndarray:

        if matrix.ndim != 2 or matrix.shape[1] != self.num_features:
            raise BadRequest(
                f"expected rows of {self.num_features} features, got shape {matrix.shape}"
            )
        return (
            np.asarray(self.booster.inplace_predict(matrix), dtype=np.float64)
            if len(matrix)
            else np.empty(0)
        )


def _model_version(model_dir: Path, default: str | None) -> str:
    metadata = model_dir / METADATA_FILE
    if metadata.exists():
        return str(json.loads(metadata.read_text())["model_version"])
    return default or "unknown"


def load_booster(
    model_dir: Path, *, threads: int = 0, model_version: str | None = None
) -> LoadedBooster:
    """Load `xgboost-model` from an extracted SageMaker model dir, or from model.tar.gz.

    When metadata.json sits beside model.tar.gz (the artifacts dir), the tarball's SHA-256 must
    match it: the server never serves an artifact it cannot vouch for. The version is
    metadata.json's, else `model_version`, else "unknown"; `threads` 0 = every core.
    """
    import xgboost

    model_dir = Path(model_dir)
    booster = xgboost.Booster()
    extracted = model_dir / SAGEMAKER_MEMBER
    tarball = model_dir / SAGEMAKER_FILE
    if extracted.exists():  # SageMaker extracts model.tar.gz into /opt/ml/model
        booster.load_model(bytearray(extracted.read_bytes()))
    elif tarball.exists():
        check_sha256(model_dir, SAGEMAKER_FILE)
        booster.load_model(bytearray(read_member(tarball, SAGEMAKER_MEMBER)))
    else:
        raise ArtifactError(f"no {SAGEMAKER_MEMBER} or {SAGEMAKER_FILE} in {model_dir}")
    booster.set_param({"nthread": threads or os.cpu_count() or 1})
    return LoadedBooster(booster, booster.num_features(), _model_version(model_dir, model_version))


def _read_csv(body: bytes) -> np.ndarray:
    """Numeric CSV rows, no header, as pandas' read_csv read them: parsed as float64 (then cast to
    float32 by the caller), an empty field is a missing value (NaN)."""
    try:
        return np.loadtxt(io.BytesIO(body), delimiter=",", comments=None, ndmin=2)
    except ValueError:
        if not _EMPTY_FIELD.search(body):
            raise
    return np.loadtxt(  # rare: missing values, so one field at a time
        io.BytesIO(body),
        delimiter=",",
        comments=None,
        ndmin=2,
        converters=lambda field: float(field) if field.strip() else np.nan,
    )


def parse_body(body: bytes, content_type: str) -> np.ndarray:
    """Feature rows from a request body; BadRequest for anything that is not a numeric matrix."""
    kind = content_type.split(";")[0].strip().lower()
    try:
        if kind == NPY:
            matrix = np.load(io.BytesIO(body), allow_pickle=False)
        elif kind == CSV:
            if not body.strip():
                return np.empty((0, 0), dtype=np.float32)
            matrix = _read_csv(body)
        else:
            raise BadRequest(f"unsupported content type {content_type!r}: use {CSV} or {NPY}")
    except BadRequest:
        raise
    except (ValueError, OSError, EOFError) as error:
        raise BadRequest(f"cannot read the body as {kind}: {error}") from error
    if matrix.dtype.kind not in "fiu":
        raise BadRequest(f"features must be numbers, got dtype {matrix.dtype}")
    return np.atleast_2d(matrix.astype(np.float32, copy=False))


def format_scores(scores: np.ndarray, accept: str) -> tuple[bytes, str]:
    if NPY in accept:
        buffer = io.BytesIO()
        np.save(buffer, scores.astype(np.float64))
        return buffer.getvalue(), NPY
    return ("\n".join(f"{s:.9g}" for s in scores) + "\n").encode(), CSV


def make_handler(model: LoadedBooster) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "fraud-model-server"
        disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms stall

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s " + format, self.address_string(), *args)

        def _send(self, status: int, body: bytes, content_type: str, error_type: str = "") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Amzn-SageMaker-Custom-Attributes", f"model_version={model.version}")
            if error_type:  # how botocore names the error (rest-json protocol)
                self.send_header("x-amzn-ErrorType", error_type)
            self.end_headers()
            self.wfile.write(body)

        def _error(self, status: int, error_type: str, message: str) -> None:
            self._send(
                status, json.dumps({"message": message}).encode(), "application/json", error_type
            )

        def do_GET(self) -> None:
            if self.path == "/ping":
                self._send(200, b'{"status": "ok"}', "application/json")
            else:
                self._error(404, "NotFound", f"no route {self.path}")

        def do_POST(self) -> None:
            if not _INVOKE_PATH.match(self.path.split("?")[0]):
                self._error(404, "NotFound", f"no route {self.path}")
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_PAYLOAD:
                self.rfile.read(length)
                self._error(413, "ValidationError", f"payload of {length} bytes exceeds 6 MB")
                return
            body = self.rfile.read(length)
            try:
                matrix = parse_body(body, self.headers.get("Content-Type", CSV))
                scores = model.predict(matrix) if matrix.size else np.empty(0)
            except BadRequest as error:
                self._error(400, "ValidationError", str(error))
                return
            except Exception:  # never leak a traceback to the caller
                log.exception("inference failed")
                self._error(500, "ModelError", "inference failed; see the model server log")
                return
            payload, content_type = format_scores(scores, self.headers.get("Accept", CSV))
            self._send(200, payload, content_type)

    return Handler


def build_server(
    model_dir: Path,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    threads: int = 0,
    model_version: str | None = None,
) -> ThreadingHTTPServer:
    model = load_booster(model_dir, threads=threads, model_version=model_version)
    server = ThreadingHTTPServer((host, port), make_handler(model))
    server.daemon_threads = True
    return server


def serve(
    model_dir: Path,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    threads: int = 0,
    model_version: str | None = None,
) -> int:
    """Serve `model_dir` on host:port until interrupted."""
    server = build_server(model_dir, host, port, threads=threads, model_version=model_version)
    print(f"model server on http://{host}:{port} serving {model_dir}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


def main(environ: Mapping[str, str] = os.environ) -> int:
    """The container's entry point: settings from SageMaker's environment variables.

    SM_MODEL_DIR (default /opt/ml/model, where SageMaker extracts model.tar.gz),
    SAGEMAKER_BIND_TO_PORT (8080), MODEL_SERVER_HOST (0.0.0.0), MODEL_SERVER_THREADS (0 = every
    core) and MODEL_VERSION (set on the SageMaker model by the deploy step).
    """
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        return serve(
            Path(environ.get("SM_MODEL_DIR") or "/opt/ml/model"),
            environ.get("MODEL_SERVER_HOST") or "0.0.0.0",  # noqa: S104 - the container's port
            int(environ.get("SAGEMAKER_BIND_TO_PORT") or 8080),
            threads=int(environ.get("MODEL_SERVER_THREADS") or 0),
            model_version=environ.get("MODEL_VERSION") or None,
        )
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
