"""`fraud-pipeline model register|promote|rollback|rollout|list`: the registry's commands."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Literal

from fraud_pipeline.config import get_settings
from fraud_pipeline.model.checksums import ArtifactError
from fraud_pipeline.registry import versions
from fraud_pipeline.registry.models import model_store
from fraud_pipeline.registry.rollout import RolloutError, roll_out
from fraud_pipeline.storage.db import connect


def main(
    command: Literal["register", "promote", "rollback", "rollout", "list"],
    *,
    artifacts_dir: Path | None = None,
    version: str | None = None,
    reason: str | None = None,
    by: str | None = None,
    rollout: bool = True,
) -> int:
    """Run one registry command; after promote/rollback the endpoint follows (unless not
    `rollout`). Exit code 1 with the reason when refused."""
    settings = get_settings()
    store = model_store(settings)
    conn = connect()
    try:
        if command == "list":
            for row in versions.list_versions(conn):
                when = row.promoted_at.isoformat(timespec="seconds") if row.promoted_at else "-"
                print(
                    f"{row.version}\t{row.status}\t{when}\t{row.promoted_by or '-'}\t{row.reason or ''}"
                )
            return 0
        if command == "register":
            registered = versions.register(
                conn, store, Path(artifacts_dir or settings.artifacts_dir)
            )
            print(f"registered {registered.version} as challenger at {registered.location}")
            return 0
        who = by or getpass.getuser()
        if command == "promote":
            assert version is not None
            chosen = versions.promote(conn, version, who, reason)
        elif command == "rollback":
            chosen = versions.rollback(conn, who, reason)
        else:  # rollout: serve the champion again (a restarted server, a failed rollout)
            found = versions.champion(conn)
            if found is None:
                raise versions.RegistryError("no champion: `fraud-pipeline db migrate` first")
            chosen = found
        print(f"{chosen.version} is the champion (by {chosen.promoted_by})")
        if rollout or command == "rollout":
            print(roll_out(versions.fetch_verified(store, chosen), chosen, settings))
    except (versions.RegistryError, ArtifactError, RolloutError) as error:
        print(f"model {command} failed: {error}", flush=True)
        return 1
    finally:
        conn.close()
    return 0
