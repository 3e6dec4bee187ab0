"""Database URLs are parsed and rebuilt with a URL library: sockets, options and passwords survive."""

from __future__ import annotations

import json

import pytest
from sqlalchemy.engine import make_url

from fraud_devstack.stack.airflow_local import postgres_connection, sqlalchemy_url
from fraud_devstack.stack.local_stack import _redact
from fraud_pipeline.storage import db

# What pgserver (the embedded server) hands out: no host, the socket directory in the query.
SOCKET = "postgresql://postgres:@/postgres?host=/tmp/fraud-pg-abc123"
TCP = "postgresql://app:p%40ss%2Fw0rd@db.internal:6543/fraud_db?sslmode=require"


@pytest.mark.parametrize("url", [SOCKET, TCP, "postgresql://postgres@127.0.0.1:5432/postgres"])
def test_with_database_changes_only_the_database(url: str) -> None:
    moved = make_url(db.with_database(url, "fraud_test_main_1a2b3c4d"))
    original = make_url(url)
    assert moved.database == "fraud_test_main_1a2b3c4d"
    assert moved.set(database=original.database) == original
    assert db.database_name(db.with_database(url, "x")) == "x"
    assert db.with_database(db.with_database(url, "a"), "b") == db.with_database(url, "b")


def test_the_socket_url_stays_a_valid_libpq_dsn() -> None:
    import psycopg2.extensions

    dsn = psycopg2.extensions.parse_dsn(db.with_database(SOCKET, "fraud_cli_1"))
    dsn.pop("password", None)  # empty: rendered or not, libpq sends none
    assert dsn == {"user": "postgres", "dbname": "fraud_cli_1", "host": "/tmp/fraud-pg-abc123"}
    assert db.socket_dir(SOCKET) == "/tmp/fraud-pg-abc123"
    assert db.socket_dir(TCP) is None


@pytest.mark.parametrize("url", [SOCKET, TCP])
def test_as_user_changes_the_role_and_drops_the_password(url: str) -> None:
    reader = make_url(db.as_user(url, "fraud_report_reader"))
    assert (reader.username, reader.password) == ("fraud_report_reader", None)
    assert reader._replace(username=None) == make_url(url)._replace(username=None, password=None)


def test_redaction_hides_only_the_password() -> None:
    shown = db.redact(TCP)
    assert "p@ss" not in shown and "p%40ss" not in shown
    assert make_url(shown).password == "***"
    assert make_url(shown).set(password="p@ss/w0rd") == make_url(TCP)
    assert _redact(TCP) == shown
    assert db.redact(SOCKET) == "postgresql://postgres@/postgres?host=%2Ftmp%2Ffraud-pg-abc123"


def test_airflow_urls_keep_the_socket_and_the_password() -> None:
    engine = make_url(sqlalchemy_url(SOCKET))
    assert engine.drivername == "postgresql+psycopg2"
    assert engine.set(drivername="postgresql") == make_url(SOCKET)
    assert make_url(sqlalchemy_url(TCP)).password == "p@ss/w0rd"
    with pytest.raises(ValueError, match="not a PostgreSQL URL"):
        sqlalchemy_url("mysql://u@h/db")
    socket_conn = json.loads(postgres_connection(SOCKET))
    assert (socket_conn["host"], socket_conn["schema"], socket_conn["login"]) == (
        "/tmp/fraud-pg-abc123",
        "postgres",
        "postgres",
    )
    tcp_conn = json.loads(postgres_connection(TCP))
    assert (tcp_conn["host"], tcp_conn["port"], tcp_conn["password"]) == (
        "db.internal",
        6543,
        "p@ss/w0rd",
    )
