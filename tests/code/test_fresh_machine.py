"""The fresh-machine guard (FRAUD_FRESH_MACHINE=1) really fails a run that reaches a server."""

from __future__ import annotations

import socket

import pytest

from fraud_pipeline.net import free_port
from tests.support import fresh_machine

EMBEDDED = "postgresql://postgres:@/postgres?host=/tmp/fraud-pg-abc123"


def test_the_guard_fails_when_something_listens_on_the_port() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(fresh_machine.FreshMachineViolation, match=f"127.0.0.1:{port}"):
            fresh_machine.check(None, None, local_server=("127.0.0.1", port))
    fresh_machine.check(None, None, local_server=("127.0.0.1", port))  # closed: passes


def test_the_guard_fails_when_the_session_database_is_not_embedded() -> None:
    closed = ("127.0.0.1", free_port())
    session = "postgresql://postgres:@/fraud_test_main_1?host=/tmp/fraud-pg-abc123"
    fresh_machine.check(session, EMBEDDED, local_server=closed)
    for elsewhere in (
        "postgresql://postgres@127.0.0.1:5432/fraud_test_main_1",
        "postgresql://postgres:@/fraud_test_main_1?host=/var/run/postgresql",
    ):
        with pytest.raises(fresh_machine.FreshMachineViolation, match="not the embedded"):
            fresh_machine.check(elsewhere, EMBEDDED, local_server=closed)
    with pytest.raises(fresh_machine.FreshMachineViolation, match="not on the embedded"):
        fresh_machine.check(session, None, local_server=closed)


def test_the_header_names_the_user_and_the_python() -> None:
    lines = fresh_machine.who_and_what()
    assert [line.split(":", 1)[0] for line in lines] == ["fresh machine", "user", "python"]
