"""The quarantine (`payments_quarantine`): list, show and re-queue payments validation refused.

A quarantined payment is kept with its reason and its payload as received (card tokenised, any
card-number-like digits masked). `retry` lands it again in `payments_landing`: the next run's
validate judges it anew (stored if it now passes, quarantined again with its reason if not).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg2.extensions

from fraud_pipeline.ingest.cards import mask_value
from fraud_pipeline.storage.db import connect


@dataclass(frozen=True)
class Quarantined:
    id: int
    trans_num: str | None
    reason: str
    run_id: str
    received_at: datetime
    payload: dict[str, Any] | None = None


def list_quarantined(
    conn: psycopg2.extensions.connection, limit: int = 50, reason: str | None = None
) -> list[Quarantined]:
    """The latest quarantined payments (newest first), optionally those whose reason contains
    `reason`."""
    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT id, trans_num, reason, run_id, received_at FROM payments_quarantine "
            "WHERE %(reason)s::text IS NULL OR strpos(reason, %(reason)s) > 0 "
            "ORDER BY id DESC LIMIT %(limit)s",
            {"reason": reason, "limit": limit},
        )
        return [Quarantined(*row) for row in cur.fetchall()]


def show(conn: psycopg2.extensions.connection, quarantine_id: int) -> Quarantined | None:
    """One quarantined payment with its payload (None when there is no such id)."""
    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT id, trans_num, reason, run_id, received_at, payload FROM payments_quarantine "
            "WHERE id = %s",
            (quarantine_id,),
        )
        row = cur.fetchone()
    if row is None:
        return None
    id_, trans_num, reason, run_id, received_at, payload = row
    return Quarantined(id_, trans_num, reason, run_id, received_at, mask_value(payload))


def retry(conn: psycopg2.extensions.connection, quarantine_ids: list[int]) -> list[int]:
    """Move these quarantined payments back to `payments_landing` (one transaction); the next
    run's validate judges them again. Returns the ids that were re-queued."""
    requeued = []
    with conn, conn.cursor() as cur:
        for quarantine_id in quarantine_ids:
            cur.execute(
                "DELETE FROM payments_quarantine WHERE id = %s RETURNING trans_num, payload",
                (quarantine_id,),
            )
            row = cur.fetchone()
            if row is None:
                continue
            trans_num, payload = row
            cur.execute(
                "INSERT INTO payments_landing (run_id, trans_num, payload) VALUES (%s, %s, %s) "
                "ON CONFLICT (run_id, trans_num) DO UPDATE SET payload = excluded.payload",
                (
                    f"quarantine-retry__{quarantine_id}",
                    trans_num or f"quarantine-{quarantine_id}",
                    json.dumps(mask_value(payload)),
                ),
            )
            requeued.append(quarantine_id)
    return requeued


def main(command: str, ids: list[int], limit: int = 50, reason: str | None = None) -> int:
    """`fraud-pipeline quarantine list|show|retry`."""
    conn = connect()
    try:
        if command == "list":
            for item in list_quarantined(conn, limit, reason):
                print(
                    f"{item.id}\t{item.received_at:%Y-%m-%d %H:%M:%S%z}\t"
                    f"{item.trans_num}\t{item.reason}"
                )
            return 0
        if command == "show":
            status = 0
            for quarantine_id in ids:
                q = show(conn, quarantine_id)
                if q is None:
                    print(f"quarantine: no payment with id {quarantine_id}")
                    status = 1
                    continue
                print(
                    json.dumps(
                        {
                            "id": q.id,
                            "trans_num": q.trans_num,
                            "reason": q.reason,
                            "run_id": q.run_id,
                            "received_at": q.received_at.isoformat(),
                            "payload": q.payload,
                        },
                        indent=2,
                        sort_keys=True,
                        default=str,
                    )
                )
            return status
        done = retry(conn, ids)
        missing = sorted(set(ids) - set(done))
        print(f"re-queued {len(done)} payment(s): the next run validates them again")
        if missing:
            print(f"quarantine: no payment with id {', '.join(map(str, missing))}")
        return 1 if missing else 0
    finally:
        conn.close()
