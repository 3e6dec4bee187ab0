"""The model server: SageMaker's hosting contract around the XGBoost booster, nothing more.

`GET /ping` answers 200 once the model is loaded; `POST /invocations` (and the SageMaker Runtime
path `POST /endpoints/{name}/invocations`, so boto3 with `endpoint_url` works unchanged) takes
feature rows and returns one probability per row. Formats: `text/csv` (as SageMaker's built-in
XGBoost container) and `application/x-npy` (float32 matrix, ~10x less to parse). The same code is
the bring-your-own-container image deployed to SageMaker (infra/sagemaker/Dockerfile) and the
local stand-in (`fraud-pipeline serve-model`), so inference is identical in both.

It is an ASGI app served by uvicorn (`http_server`): worker processes
(`SAGEMAKER_MODEL_SERVER_WORKERS`), keep-alive, bodies over 6 MB refused unread, and on SIGTERM
the requests in flight finish before the process exits. It imports the standard library, numpy,
xgboost and uvicorn only (plus the stdlib-only artifact checks): no pandas, scikit-learn or
pydantic, so the container installs just those three. Its settings are parameters;
`python -m fraud_pipeline.serving.model_server` (the container's `serve`) reads them from
SageMaker's environment variables, `fraud-pipeline serve-model` from its options.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import sys
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fraud_pipeline.model.checksums import (
    METADATA_FILE,
    SAGEMAKER_FILE,
    SAGEMAKER_MEMBER,
    ArtifactError,
    check_sha256,
    verify_files,
)
from fraud_pipeline.model.tarballs import read_member

log = logging.getLogger(__name__)

CSV = "text/csv"
NPY = "application/x-npy"
MAX_PAYLOAD = 6 * 1024 * 1024  # SageMaker real-time endpoints refuse larger requests
_INVOKE_PATH = re.compile(r"^/(?:endpoints/[A-Za-z0-9-]{1,63}/)?invocations$")
_EMPTY_FIELD = re.compile(rb"(?:^|,)[ \t]*,|,[ \t]*\r?$", re.MULTILINE)
DEFAULT_MODEL_DIR = "/opt/ml/model"  # where SageMaker extracts model.tar.gz

Scope = MutableMapping[str, Any]  # ASGI's types, without importing a server
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


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
    import xgboost  # heavy; only where a model is used

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


def _header(scope: Scope, name: bytes, default: str) -> str:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return default


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None past `limit` bytes (a chunked upload has no length)."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def _version_header(model: LoadedBooster) -> tuple[bytes, bytes]:
    return b"x-amzn-sagemaker-custom-attributes", f"model_version={model.version}".encode()


class ScoringApp:
    """SageMaker's hosting contract as an ASGI app, for any ASGI server (uvicorn here).

    Parsing and inference run on the event loop's thread pool, so `/ping` answers while a large
    batch is being scored, and xgboost (which releases the GIL) scores concurrent requests at once.

    With `reloadable` (the single-process local server: a reload reaches one process only),
    `POST /reload` with `{"model_dir": ..., "sha256": {file: digest}}` (the model registry's
    checksums, model.tar.gz's and metadata.json's at least) loads that model beside the one serving, then swaps the reference: a request
    scores and reports the version of the model it started with, so none fails during a swap.
    An artifact that does not match is refused (409) and the old model goes on serving.
    """

    def __init__(self, model: LoadedBooster, *, threads: int = 0, reloadable: bool = False) -> None:
        self.model = model
        self.threads = threads
        self.reloadable = reloadable

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # the server runs without the lifespan protocol
            return
        path, method = scope["path"], scope["method"]
        if path == "/ping" and method == "GET":
            await self._send(send, 200, b'{"status": "ok"}', "application/json")
        elif method == "POST" and _INVOKE_PATH.match(path):
            await self._invoke(scope, receive, send)
        elif path == "/reload" and method == "POST" and self.reloadable:
            await self._reload(receive, send)
        else:
            await self._error(send, 404, "NotFound", f"no route {path}")

    async def _invoke(self, scope: Scope, receive: Receive, send: Send) -> None:
        length = int(_header(scope, b"content-length", "0") or 0)
        body = None if length > MAX_PAYLOAD else await _read_body(receive, MAX_PAYLOAD)
        if body is None:  # not read any further: answer and close the connection
            message = f"payload of {max(length, MAX_PAYLOAD + 1)} bytes exceeds 6 MB"
            await self._error(send, 413, "ValidationError", message, close=True)
            return
        content_type = _header(scope, b"content-type", CSV)
        accept = _header(scope, b"accept", CSV)
        model = self.model  # this request's model, whatever a reload swaps in meanwhile
        loop = asyncio.get_running_loop()
        try:
            payload, kind = await loop.run_in_executor(
                None, self.score, body, content_type, accept, model
            )
        except BadRequest as error:
            await self._error(send, 400, "ValidationError", str(error))
            return
        except Exception:  # never leak a traceback to the caller
            log.exception("inference failed")
            await self._error(send, 500, "ModelError", "inference failed; see the model server log")
            return
        await self._send(send, 200, payload, kind, _version_header(model))

    def score(
        self, body: bytes, content_type: str, accept: str, model: LoadedBooster | None = None
    ) -> tuple[bytes, str]:
        """One request's scores in the format `accept` asks for (CPU work: off the event loop)."""
        model = model or self.model
        matrix = parse_body(body, content_type)
        scores = model.predict(matrix) if matrix.size else np.empty(0)
        return format_scores(scores, accept)

    async def _reload(self, receive: Receive, send: Send) -> None:
        body = await _read_body(receive, 64 * 1024)
        try:
            request = json.loads(body or b"")
            model_dir, expected = Path(request["model_dir"]), dict(request["sha256"])
            if not {SAGEMAKER_FILE, METADATA_FILE} <= expected.keys():
                raise KeyError(f"sha256 must list {SAGEMAKER_FILE} and {METADATA_FILE}")
        except (ValueError, KeyError, TypeError) as error:
            await self._error(send, 400, "ValidationError", f"bad reload request: {error!r}")
            return
        loop = asyncio.get_running_loop()
        try:
            model = await loop.run_in_executor(None, self.load_verified, model_dir, expected)
        except (ArtifactError, OSError, ValueError) as error:
            log.warning(
                "reload of %s refused, still serving %s: %s", model_dir, self.model.version, error
            )
            await self._error(send, 409, "ModelError", f"reload refused: {error}")
            return
        previous, self.model = self.model, model  # one reference swap: atomic for the requests
        log.info(
            "reloaded: serving model %s (was %s) from %s",
            model.version,
            previous.version,
            model_dir,
        )
        answer = json.dumps({"model_version": model.version, "previous": previous.version})
        await self._send(send, 200, answer.encode(), "application/json")

    def load_verified(self, model_dir: Path, expected: Mapping[str, str]) -> LoadedBooster:
        """`model_dir`'s booster once its files match `expected` (and metadata.json beside it)."""
        verify_files(model_dir, expected, "the reload request")
        return load_booster(model_dir, threads=self.threads)

    async def _send(
        self, send: Send, status: int, body: bytes, content_type: str, *extra: tuple[bytes, bytes]
    ) -> None:
        if not any(name == b"x-amzn-sagemaker-custom-attributes" for name, _ in extra):
            extra = (*extra, _version_header(self.model))
        headers = [
            (b"content-type", content_type.encode()),
            (b"content-length", str(len(body)).encode()),
            *extra,
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _error(
        self, send: Send, status: int, error_type: str, message: str, close: bool = False
    ) -> None:
        extra = [(b"x-amzn-errortype", error_type.encode())]  # how botocore names the error
        if close:
            extra.append((b"connection", b"close"))
        body = json.dumps({"message": message}).encode()
        await self._send(send, status, body, "application/json", *extra)


def build_app(
    model_dir: Path, *, threads: int = 0, model_version: str | None = None, reloadable: bool = False
) -> ScoringApp:
    """The app serving `model_dir` (checksum verified first, see load_booster)."""
    return ScoringApp(
        load_booster(model_dir, threads=threads, model_version=model_version),
        threads=threads,
        reloadable=reloadable,
    )


def app_from_environment(environ: Mapping[str, str] = os.environ) -> ScoringApp:
    """The app of one worker process: the model from SM_MODEL_DIR (uvicorn's factory)."""
    return build_app(
        Path(environ.get("SM_MODEL_DIR") or DEFAULT_MODEL_DIR),
        threads=int(environ.get("MODEL_SERVER_THREADS") or 0),
        model_version=environ.get("MODEL_VERSION") or None,
    )


def serve(
    model_dir: Path,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    workers: int = 1,
    threads: int = 0,
    timeout_s: int = 60,
    model_version: str | None = None,
    reload: bool = False,
) -> int:
    """Serve `model_dir` on host:port with `workers` processes until SIGTERM or Ctrl-C.

    `reload` (one worker only) opens POST /reload, for the model registry's promote/rollback.

    The model is loaded (checksum first) before anything listens, so a bad artifact stops the
    server at once. Each worker scores with `threads` XGBoost threads (0: its share of the cores).
    On SIGTERM the requests in flight get `timeout_s` to finish; a worker that does not answer
    uvicorn's health check for `timeout_s` is replaced.
    """
    from fraud_pipeline.serving import http_server  # uvicorn: only to serve, not to load a model

    threads = threads or max(1, (os.cpu_count() or 1) // workers)
    reloadable = workers == 1 and reload
    scoring = build_app(
        model_dir, threads=threads, model_version=model_version, reloadable=reloadable
    )
    app: ScoringApp | str = scoring
    if workers > 1:  # spawned processes: they read the model's settings from the environment
        os.environ.update(
            SM_MODEL_DIR=str(model_dir),
            MODEL_SERVER_THREADS=str(threads),
            MODEL_VERSION=scoring.model.version,
        )
        app = "fraud_pipeline.serving.model_server:app_from_environment"
    print(
        f"model server on http://{host}:{port} serving {model_dir} "
        f"(model {scoring.model.version}, {workers} worker(s) x {threads} thread(s)"
        f"{', POST /reload open' if reloadable else ''})",
        flush=True,
    )
    config = http_server.config(app, host, port, workers=workers, timeout_s=timeout_s)
    return http_server.run(config)


def main(environ: Mapping[str, str] = os.environ) -> int:
    """The container's entry point: settings from SageMaker's environment variables.

    SM_MODEL_DIR (default /opt/ml/model, where SageMaker extracts model.tar.gz),
    SAGEMAKER_BIND_TO_PORT (8080), SAGEMAKER_MODEL_SERVER_WORKERS (worker processes, default one
    per core, as SageMaker's own containers), SAGEMAKER_MODEL_SERVER_TIMEOUT (seconds the requests
    in flight get to finish at shutdown, and a worker may go unresponsive before it is replaced;
    60), MODEL_SERVER_HOST (0.0.0.0), MODEL_SERVER_THREADS
    (XGBoost threads per worker, default its share of the cores) and MODEL_VERSION (set on the
    SageMaker model by the deploy step); MODEL_SERVER_RELOAD=1 (`fraud-pipeline serve-model`
    with one worker) opens POST /reload, never set in the SageMaker image.
    """
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        return serve(
            Path(environ.get("SM_MODEL_DIR") or DEFAULT_MODEL_DIR),
            environ.get("MODEL_SERVER_HOST") or "0.0.0.0",  # noqa: S104 - the container's port
            int(environ.get("SAGEMAKER_BIND_TO_PORT") or 8080),
            workers=int(environ.get("SAGEMAKER_MODEL_SERVER_WORKERS") or os.cpu_count() or 1),
            threads=int(environ.get("MODEL_SERVER_THREADS") or 0),
            timeout_s=int(environ.get("SAGEMAKER_MODEL_SERVER_TIMEOUT") or 60),
            model_version=environ.get("MODEL_VERSION") or None,
            reload=environ.get("MODEL_SERVER_RELOAD") == "1",
        )
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
