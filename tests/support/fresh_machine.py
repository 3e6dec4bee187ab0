"""Fresh-machine mode (FRAUD_FRESH_MACHINE=1): the suite must never reach a server on :5432.

CI runs the suite the way a new user's machine is: no PostgreSQL on 127.0.0.1:5432, so the
session must use the embedded throwaway server (pgserver, through its Unix socket). A run that
reaches 127.0.0.1:5432 anyway proves nothing about that machine: `check` makes it fail.
"""

from __future__ import annotations

import getpass
import os
import sys

from fraud_pipeline.net import port_open
from fraud_pipeline.storage import db

ENV = "FRAUD_FRESH_MACHINE"
LOCAL_SERVER = ("127.0.0.1", 5432)


class FreshMachineViolation(AssertionError):
    """The fresh-machine run used (or could use) a server the user's machine would not have."""


def enabled() -> bool:
    return os.environ.get(ENV, "") not in ("", "0")


def check(
    session_url: str | None,
    embedded_url: str | None,
    *,
    local_server: tuple[str, int] = LOCAL_SERVER,
) -> None:
    """Raise FreshMachineViolation unless nothing listens on `local_server` and the session's
    database lives on the embedded server (same socket, same user), not on any TCP host."""
    host, port = local_server
    if port_open(host, port):
        raise FreshMachineViolation(
            f"{ENV}=1 but {host}:{port} is reachable: this run is not a fresh machine's"
        )
    if session_url is None:
        return
    if embedded_url is None:
        raise FreshMachineViolation(
            f"{ENV}=1 but the session database is not on the embedded server: "
            f"{db.redact(session_url)}"
        )
    session, embedded = db.parse_url(session_url), db.parse_url(embedded_url)
    if (
        session.host
        or db.socket_dir(session_url) is None
        or db.socket_dir(session_url) != db.socket_dir(embedded_url)
        or session.port != embedded.port
    ):
        raise FreshMachineViolation(
            f"{ENV}=1 but the session database {db.redact(session_url)} is not the embedded "
            f"server's ({db.redact(embedded_url)})"
        )


def who_and_what() -> list[str]:
    """The user and the Python the suite runs as (the header's first lines)."""
    base = getattr(sys, "_base_executable", sys.executable)
    version = ".".join(map(str, sys.version_info[:3]))
    return [
        f"fresh machine: {'yes (' + ENV + '=1)' if enabled() else 'no'}",
        f"user: {getpass.getuser()} (uid {os.getuid()}), HOME={os.environ.get('HOME', '?')}",
        f"python: {version} at {sys.executable} (base interpreter {os.path.realpath(base)})",
    ]
