"""One identity per person (PCI DSS 8): local accounts with Argon2id hashes, managed by
`fraud-pipeline users`, roles that decide what each may do (PCI DSS 7), every change and
sign-in audited (10.2)."""

from __future__ import annotations

import re

import psycopg2
import pytest

from fraud_devstack.stack.local_stack import first_admin
from fraud_pipeline import cli
from fraud_pipeline.config import get_settings
from fraud_pipeline.security import audit, users
from fraud_pipeline.storage import db


def run(url: str, monkeypatch, capsys, *args: str) -> tuple[int, str]:
    monkeypatch.setenv("DATABASE_URL", url)
    get_settings.cache_clear()
    try:
        code = cli.main(["users", *args])
    finally:
        get_settings.cache_clear()
    out = capsys.readouterr()
    return code, out.out + out.err


def one_time(said: str) -> str:
    match = re.search(r"one-time password (\S+)", said)
    assert match, said
    return match.group(1)


def sign_in(url: str, username: str, password: str) -> users.User | None:
    """As the report signs people in: the report role, through fraud_user_for_sign_in."""
    with psycopg2.connect(db.as_user(url, "fraud_report_reader")) as conn, conn.cursor() as cur:
        user = users.authenticate(cur, username, password, "127.0.0.1")
    conn.close()
    return user


def test_users_add_list_disable_reset_and_every_step_audited(clean_db, monkeypatch, capsys):
    code, said = run(clean_db, monkeypatch, capsys, "add", "alice", "--role", "analyst")
    assert code == 0
    password = one_time(said)
    with db.transaction(clean_db) as cur:
        cur.execute("SELECT password_hash FROM app_users WHERE username = 'alice'")
        stored = cur.fetchone()[0]
    assert stored.startswith("$argon2id$") and password not in stored
    assert sign_in(clean_db, "alice", password) == users.User("alice", "analyst")
    assert sign_in(clean_db, "alice", password + "x") is None
    assert sign_in(clean_db, "nobody", password) is None

    assert run(clean_db, monkeypatch, capsys, "list")[1].split() == ["alice", "analyst", "enabled"]
    assert run(clean_db, monkeypatch, capsys, "disable", "alice")[0] == 0
    assert sign_in(clean_db, "alice", password) is None  # disabled: the right password fails
    code, said = run(clean_db, monkeypatch, capsys, "reset-password", "alice")
    assert code == 0 and sign_in(clean_db, "alice", one_time(said)) is not None
    assert sign_in(clean_db, "alice", password) is None  # the old one is gone

    with db.transaction(clean_db) as cur:
        actions = [(e.action, e.target) for e in reversed(audit.recent(cur))]
        assert audit.verify(cur).ok
    assert actions == [
        (audit.USER_ADD, "alice"),
        (audit.SIGN_IN, "alice"),
        (audit.SIGN_IN_FAILED, "alice"),
        (audit.SIGN_IN_FAILED, "nobody"),
        (audit.USER_DISABLE, "alice"),
        (audit.SIGN_IN_FAILED, "alice"),
        (audit.USER_RESET, "alice"),
        (audit.SIGN_IN, "alice"),
        (audit.SIGN_IN_FAILED, "alice"),
    ]


def test_a_second_account_with_the_same_name_is_refused(clean_db, monkeypatch, capsys):
    assert run(clean_db, monkeypatch, capsys, "add", "bob", "--role", "viewer")[0] == 0
    code, said = run(clean_db, monkeypatch, capsys, "add", "bob", "--role", "admin")
    assert code == 1 and "exists already" in said


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        ("viewer", {"report", "model-health"}),
        ("analyst", {"report", "model-health", "review", "export"}),
        ("lead", {"report", "model-health", "review", "export", "rules", "assign"}),
        ("admin", set(users.NEEDS)),
        ("intruder", set()),
        (None, set()),
    ],
)
def test_each_role_may_do_what_its_own_and_lower_roles_may(role, allowed):
    assert {action for action in users.NEEDS if users.may(role, action)} == allowed


def test_the_report_role_cannot_read_the_accounts_table(clean_db):
    conn = psycopg2.connect(db.as_user(clean_db, "fraud_report_reader"))
    try:
        with pytest.raises(psycopg2.errors.InsufficientPrivilege), conn.cursor() as cur:
            cur.execute("SELECT password_hash FROM app_users")
    finally:
        conn.close()


def test_make_run_creates_one_admin_on_a_fresh_database_only(clean_db):
    password = first_admin(clean_db)
    assert password and first_admin(clean_db) is None  # the second start makes none
    with (
        psycopg2.connect(db.as_user(clean_db, "fraud_report_reader")) as conn,
        conn.cursor() as cur,
    ):
        assert users.authenticate(cur, "admin", password) == users.User("admin", "admin")
    conn.close()
