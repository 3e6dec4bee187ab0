"""`fraud-pipeline model register|promote|rollback|rollout|list|history`: the registry's commands.

promote and rollback change the registry only together with the endpoint (the running stack's
model server, else the configured one, else SageMaker: registry.rollout): if the endpoint does
not take the model, the registry is left as it was and the command says so (exit 1).
"""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Literal

from fraud_pipeline.config import get_settings
from fraud_pipeline.model.checksums import ArtifactError
from fraud_pipeline.registry import versions
from fraud_pipeline.registry.models import model_store
from fraud_pipeline.registry.rollout import (
    RolloutError,
    deployer,
    describe_endpoint,
    verifier,
)
from fraud_pipeline.storage.db import connect


def _when(instant: object) -> str:
    return instant.isoformat(timespec="seconds") if hasattr(instant, "isoformat") else "-"


def main(
    command: Literal["register", "promote", "rollback", "rollout", "list", "history"],
    *,
    artifacts_dir: Path | None = None,
    version: str | None = None,
    reason: str | None = None,
    by: str | None = None,
    rollout: bool = True,
    override_gate: bool = False,
    model_url: str | None = None,
    state_dir: Path | None = None,
) -> int:
    """Run one registry command. Exit code 1 with the reason when refused or not served."""
    settings = get_settings()
    if state_dir is not None:
        settings = settings.model_copy(update={"local_state_dir": Path(state_dir)})
    store = model_store(settings)
    who = by or getpass.getuser()
    conn = connect()
    try:
        if command == "list":
            for row in versions.list_versions(conn):
                print(
                    f"{row.version}\t{row.status}\t{_when(row.promoted_at)}\t"
                    f"{row.promoted_by or '-'}\t{row.reason or ''}"
                )
            return 0
        if command == "history":
            for event in versions.history(conn, version):
                previous = f" (was {event.previous})" if event.previous else ""
                print(
                    f"{_when(event.at)}\t{event.version}\t{event.event}{previous}\t"
                    f"{event.actor}\t{event.reason or ''}"
                )
            return 0
        if command == "register":
            registered = versions.register(
                conn, store, Path(artifacts_dir or settings.artifacts_dir), who
            )
            print(f"registered {registered.version} as challenger at {registered.location}")
            return 0
        if command == "rollout":  # serve the champion again (a restarted server, a failed one)
            found = versions.champion(conn)
            if found is None:
                raise versions.RegistryError("no champion: `fraud-pipeline db migrate` first")
            served = deployer(settings, store, model_url=model_url)(found)
            print(f"{found.version} is the champion: {served}")
            return 0
        # --no-rollout: the registry alone (the version still verified), and said what it costs
        endpoint = deployer(settings, store, model_url=model_url) if rollout else verifier(store)
        said: list[str] = []

        def deploy(chosen: versions.ModelVersion) -> str:
            said.append(endpoint(chosen))
            return said[-1]

        before = versions.champion(conn)
        was = before.version if before else None
        print(f"{command}: serving through {describe_endpoint(settings, model_url)}", flush=True)
        if command == "promote":
            assert version is not None
            chosen = versions.promote(
                conn, version, who, reason, override_gate=override_gate, deploy=deploy
            )
        else:
            chosen = versions.rollback(conn, who, reason, deploy=deploy)
        print(
            f"{chosen.version} is the champion (by {chosen.promoted_by}; was {was}): "
            f"{said[-1] if said else ''}"
        )
        if not rollout:
            print(
                f"! the endpoint still serves {was}: runs fail and payments wait "
                "until `fraud-pipeline model rollout`"
            )
    except (versions.RegistryError, ArtifactError, RolloutError) as error:
        print(f"model {command} failed: {error}", flush=True)
        return 1
    finally:
        conn.close()
    return 0
