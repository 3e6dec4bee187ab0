"""One identity per person: local accounts (Argon2id hashes in `app_users`), their roles, and
what each role may do. `fraud-pipeline users add|disable|reset-password|list` manages them;
the report signs people in with `authenticate`. Every change and every sign-in, failed ones
included, leaves an audit row (`security.audit`).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Final, Literal

import psycopg2.extensions
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from fraud_pipeline.security import audit

Role = Literal["viewer", "analyst", "lead", "admin"]
ROLES: Final[tuple[Role, ...]] = ("viewer", "analyst", "lead", "admin")
# What each action needs: a role may do what its own and every lower role may.
NEEDS: Final[dict[str, Role]] = {
    "report": "viewer",
    "model-health": "viewer",
    "review": "analyst",
    "export": "analyst",
    "assign": "lead",  # give a review case to another analyst
    "rules": "lead",
    "users": "admin",
    "audit": "admin",
}
_HASHER = PasswordHasher()  # Argon2id, the library's current parameters
# Verified when the user does not exist, so that a wrong name costs the same time.
_DUMMY_HASH: Final = _HASHER.hash(secrets.token_urlsafe(16))


def may(role: str | None, action: str) -> bool:
    """Whether `role` may do `action` (an unknown role or action: no)."""
    if role not in ROLES or action not in NEEDS:
        return False
    return ROLES.index(role) >= ROLES.index(NEEDS[action])


@dataclass(frozen=True)
class User:
    username: str
    role: Role
    disabled: bool = False
    must_change_password: bool = False


def one_time_password() -> str:
    return secrets.token_urlsafe(15)


def add(cur: psycopg2.extensions.cursor, username: str, role: Role, actor: str) -> str:
    """A new account; returns its one-time password (shown once, stored only as its hash)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    password = one_time_password()
    cur.execute(
        "INSERT INTO app_users (username, role, password_hash) VALUES (%s, %s, %s) "
        "ON CONFLICT (username) DO NOTHING RETURNING username",
        (username, role, _HASHER.hash(password)),
    )
    if cur.fetchone() is None:
        raise ValueError(f"user {username!r} exists already")
    audit.record(cur, actor, audit.USER_ADD, username, {"role": role})
    return password


def disable(cur: psycopg2.extensions.cursor, username: str, actor: str) -> None:
    cur.execute(
        "UPDATE app_users SET disabled_at = now(), updated_at = now() "
        "WHERE username = %s AND disabled_at IS NULL RETURNING username",
        (username,),
    )
    if cur.fetchone() is None:
        raise ValueError(f"no enabled user {username!r}")
    audit.record(cur, actor, audit.USER_DISABLE, username)


def reset_password(cur: psycopg2.extensions.cursor, username: str, actor: str) -> str:
    """A new one-time password (the account enabled again)."""
    password = one_time_password()
    cur.execute(
        "UPDATE app_users SET password_hash = %s, must_change_password = true, "
        "disabled_at = NULL, updated_at = now() WHERE username = %s RETURNING username",
        (_HASHER.hash(password), username),
    )
    if cur.fetchone() is None:
        raise ValueError(f"no user {username!r}")
    audit.record(cur, actor, audit.USER_RESET, username)
    return password


def listed(cur: psycopg2.extensions.cursor) -> list[User]:
    cur.execute(
        "SELECT username, role, disabled_at IS NOT NULL, must_change_password FROM app_users "
        "ORDER BY username"
    )
    return [User(*row) for row in cur.fetchall()]


def authenticate(
    cur: psycopg2.extensions.cursor, username: str, password: str, source: str = ""
) -> User | None:
    """The user, if the password is theirs and the account enabled; an audit row either way.
    Needs only `fraud_user_for_sign_in` (the report role may call it)."""
    cur.execute("SELECT * FROM fraud_user_for_sign_in(%s)", (username,))
    row = cur.fetchone()
    stored = row[2] if row and row[2] else _DUMMY_HASH
    try:
        matches: bool = _HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError):
        matches = False
    if row is None or not matches or row[3]:
        why = "unknown user" if row is None else "disabled" if row[3] and matches else "password"
        audit.record(cur, username or "-", audit.SIGN_IN_FAILED, username, {"why": why}, source)
        return None
    audit.record(cur, row[0], audit.SIGN_IN, row[0], {"role": row[1]}, source)
    return User(row[0], row[1], False)


def vouched_for(
    cur: psycopg2.extensions.cursor, username: str, detail: dict[str, str], source: str = ""
) -> User | None:
    """A person an OpenID Connect provider signed in (`st.login`): their account, if it exists
    and is enabled (an admin adds it, named by the provider's email); an audit row either way.
    The provider proves who they are; the account says what they may do."""
    cur.execute("SELECT * FROM fraud_user_for_sign_in(%s)", (username,))
    row = cur.fetchone()
    if row is None or row[3]:
        why = {"why": "unknown user" if row is None else "disabled"}
        audit.record(
            cur, username or "-", audit.SIGN_IN_FAILED, username, {**detail, **why}, source
        )
        return None
    audit.record(cur, row[0], audit.SIGN_IN, row[0], {**detail, "role": row[1]}, source)
    return User(row[0], row[1], False)
