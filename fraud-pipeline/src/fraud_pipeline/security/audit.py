"""The audit trail (sql/migrations/036_audit_log.sql): who saw and did what, when, from where.

`record` appends one row through `fraud_audit_append` (the only way in for the application
roles), masked (`mask_card_numbers`) like every other sink; `verify` walks the hash chain and
names the first broken row; `purge` applies AUDIT_RETENTION_DAYS (at least 365).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg2.extensions

from fraud_pipeline.security.masking import mask_card_numbers, mask_value

# What is recorded (the `action` column).
SIGN_IN = "sign-in"
SIGN_IN_FAILED = "sign-in.failed"
SIGN_OUT = "sign-out"
VIEW_CARD = "card.view"  # a card's payments shown (cardholder data)
VERDICT = "verdict"
EXPORT = "export"  # cardholder data downloaded
USER_ADD, USER_DISABLE, USER_RESET = "user.add", "user.disable", "user.reset-password"
PAGE_DENIED = "page.denied"
CASE_CLAIM, CASE_ASSIGN, CASE_RELEASE = "case.claim", "case.assign", "case.release"


def record(
    cur: psycopg2.extensions.cursor,
    actor: str,
    action: str,
    target: str = "",
    detail: dict[str, Any] | None = None,
    source: str = "",
) -> int:
    """Append one row (inside the caller's transaction: it lands with what it records)."""
    cur.execute(
        "SELECT fraud_audit_append(%s, %s, %s, %s::jsonb, %s)",
        (
            mask_card_numbers(actor)[:200],
            action,
            mask_card_numbers(target),
            json.dumps(mask_value(detail or {}), default=str),
            mask_card_numbers(source),
        ),
    )
    row = cur.fetchone()
    assert row is not None
    return int(row[0])


@dataclass(frozen=True)
class Entry:
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    detail: dict[str, Any]
    source: str


@dataclass(frozen=True)
class Verdict:
    rows: int
    broken_at: int | None = None  # the first broken row's id
    why: str = ""
    head: str = ""  # the last row's hash: keep it elsewhere to anchor the chain

    @property
    def ok(self) -> bool:
        return self.broken_at is None


def verify(cur: psycopg2.extensions.cursor) -> Verdict:
    """Walk the chain in id order: each row's hash must be its contents' digest, and its
    `prev_hash` the previous row's hash (the oldest row kept after a purge anchors it)."""
    cur.execute(
        "SELECT id, prev_hash, row_hash, fraud_audit_digest(prev_hash, id, at, actor, action, "
        "target, detail, source) FROM audit_log ORDER BY id"
    )
    previous: str | None = None
    rows = 0
    for id_, prev_hash, row_hash, digest in cur:
        rows += 1
        if previous is not None and prev_hash != previous:
            why = "its link to the row before does not match (a row removed or inserted)"
            return Verdict(rows, id_, why)
        if row_hash != digest:
            return Verdict(rows, id_, "its contents do not match its hash (edited)")
        previous = row_hash
    return Verdict(rows, head=previous or "")


def recent(cur: psycopg2.extensions.cursor, limit: int = 200) -> list[Entry]:
    cur.execute(
        "SELECT id, at, actor, action, target, detail, source FROM audit_log "
        "ORDER BY id DESC LIMIT %s",
        (limit,),
    )
    return [Entry(*row) for row in cur.fetchall()]


def purge(cur: psycopg2.extensions.cursor, days: int, actor: str = "cli") -> int:
    cur.execute("SELECT fraud_audit_purge(%s, %s)", (days, actor))
    row = cur.fetchone()
    return int(row[0]) if row else 0
