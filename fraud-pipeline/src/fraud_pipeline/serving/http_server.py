"""The HTTP server of the project's ASGI apps (model server, payments API): uvicorn's, one setup.

uvicorn brings what SageMaker's own serving containers have and `http.server` lacked: worker
processes sharing the socket (replaced if one dies or stops answering the supervisor's health
check for `timeout_s`, as gunicorn's --timeout in SageMaker's containers), keep-alive, a
maintained HTTP/1.1 parser, and a graceful stop: on SIGTERM (or Ctrl-C) it stops accepting
connections and lets the requests in flight finish, up to `timeout_s`, before exiting.

Its HTTP parser and event loop are named, not guessed (uvicorn's "auto" takes whatever happens to
be installed): httptools and uvloop, ~25% faster on `make bench`'s scoring than h11 and asyncio,
so the SageMaker image runs what the bench measured (its Dockerfile installs both).
"""

from __future__ import annotations

import signal
from typing import Any

import uvicorn
from uvicorn.supervisors import Multiprocess

HTTP, LOOP = "httptools", "uvloop"  # uvicorn imports these modules by name
SPEEDUPS = (HTTP, LOOP)


def config(
    app: Any, host: str, port: int, *, workers: int = 1, timeout_s: int = 60
) -> uvicorn.Config:
    """`app` (an ASGI app, or "module:factory" for `workers` > 1) served on host:port.

    No access log (the callers log what matters; a line per request costs throughput) and no
    lifespan protocol (the apps are ready when built).
    """
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        workers=workers,
        factory=isinstance(app, str),
        lifespan="off",
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=timeout_s,
        timeout_worker_healthcheck=timeout_s,  # a busy worker's GIL can delay its answer
        http=HTTP,
        loop=LOOP,
    )


def _drained(signum: int, frame: Any) -> None:
    """uvicorn raises the signal it handled again once it has drained: by then, nothing to do."""


def run(settings: uvicorn.Config) -> int:
    """Serve in the foreground until SIGTERM or SIGINT, then drain; 0 after SIGTERM.

    After SIGINT, KeyboardInterrupt reaches the caller, as any Ctrl-C does.
    """
    previous = signal.signal(signal.SIGTERM, _drained)
    try:
        if settings.workers > 1:
            Multiprocess(settings, sockets=[settings.bind_socket()]).run()
        else:
            uvicorn.Server(settings).run()
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0
