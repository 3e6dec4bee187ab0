"""Make the scoring endpoint serve a registry version: `model promote`/`rollback`/`rollout`.

Which endpoint: the one of the stack this checkout runs (`<LOCAL_STATE_DIR>/stack.json`, the
state `fraud-dev airflow` uses: `make run --free-ports` serves the model on a port of its
own), else SAGEMAKER_ENDPOINT_URL, else SageMaker. Locally the model server started with
`serve-model --reload` is asked to reload the version's artifacts, with the registry's SHA-256s:
it verifies them and swaps the model in place, or refuses and keeps serving the old one. On AWS
the version's model.tar.gz goes through the deploy steps: a new SageMaker model and endpoint
config, then update_endpoint (SageMaker serves the old config until the new one is InService).
`deployer` is what the registry's switches call inside their transaction (versions._switch).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from fraud_pipeline.config import Settings
from fraud_pipeline.registry.store import ModelStore
from fraud_pipeline.registry.versions import Deploy, ModelVersion, fetch_verified
from fraud_pipeline.serving.sagemaker_deploy import Release, deployer_from_settings

log = logging.getLogger(__name__)

STACK_FILE = "stack.json"


class RolloutError(RuntimeError):
    """The endpoint did not take the version. `maybe_applied`: its answer was lost, so it may
    have (the caller deploys the previous champion again)."""

    def __init__(self, message: str, *, maybe_applied: bool = False) -> None:
        super().__init__(message)
        self.maybe_applied = maybe_applied


def _alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError, TypeError):
        return False
    except PermissionError:
        return True
    return True


def stack_model_url(state_dir: Path) -> str | None:
    """The model server URL of the stack running from `state_dir` (its stack.json, while its
    supervisor lives), else None."""
    path = Path(state_dir) / STACK_FILE
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not _alive(state.get("supervisor_pid")):
        log.warning(
            "%s names a stack that is not running (pid %s)", path, state.get("supervisor_pid")
        )
        return None
    url = (state.get("urls") or {}).get("model")
    return str(url) if url else None


def endpoint_url(settings: Settings, model_url: str | None = None) -> str | None:
    """Where a switch reaches: `model_url`, the running stack's model server, the configured
    SAGEMAKER_ENDPOINT_URL; None means the SageMaker endpoint."""
    return model_url or stack_model_url(settings.local_state_dir) or settings.sagemaker_endpoint_url


def describe_endpoint(settings: Settings, model_url: str | None = None) -> str:
    url = endpoint_url(settings, model_url)
    return (
        f"model server {url}" if url else f"SageMaker endpoint {settings.sagemaker_endpoint_name}"
    )


def reload_local_server(
    url: str, model_dir: Path, version: ModelVersion, timeout_s: float = 60
) -> str:
    """POST /reload to the local model server; the version it now serves."""
    import requests  # only for the local server's /reload

    try:
        response = requests.post(
            f"{url.rstrip('/')}/reload",
            json={"model_dir": str(Path(model_dir).resolve()), "sha256": version.sha256},
            timeout=timeout_s,
        )
    except requests.ConnectionError as error:
        raise RolloutError(f"no model server at {url}: {error}") from error
    except requests.RequestException as error:  # e.g. a timeout: it may have reloaded
        raise RolloutError(f"no answer from {url}: {error}", maybe_applied=True) from error
    if response.status_code == 404:
        raise RolloutError(
            f"the model server at {url} cannot reload: start it with "
            "`fraud-pipeline serve-model --reload`, then `fraud-pipeline model rollout`"
        )
    if response.status_code != 200:
        raise RolloutError(f"the model server at {url} refused: {response.text}")
    served = str(json.loads(response.text)["model_version"])
    if served != version.version:
        raise RolloutError(
            f"the model server at {url} reloaded {model_dir} but serves {served}, not "
            f"{version.version}",
            maybe_applied=True,
        )
    return served


def update_sagemaker(deployer: Any, model_dir: Path, *, wait: bool = True) -> Any:
    """The deploy steps on the champion's verified artifacts; the existing endpoint is updated."""
    return deployer.deploy(Release.from_artifacts(model_dir), must_exist=True, wait=wait)


def roll_out(
    model_dir: Path, version: ModelVersion, settings: Settings, *, model_url: str | None = None
) -> str:
    """Point the endpoint at `version`: the local model server at `model_url` (default: see
    `endpoint_url`), else SageMaker; what happened."""
    url = endpoint_url(settings, model_url)
    if url:
        served = reload_local_server(url, model_dir, version)
        return f"model server {url} now serves {served}"

    try:
        result = update_sagemaker(deployer_from_settings(settings), model_dir)
    except Exception as error:  # a failed update leaves SageMaker serving the old config
        raise RolloutError(f"SageMaker update failed: {error}") from error
    return f"endpoint {result.endpoint} {result.action}: config {result.endpoint_config}"


def deployer(settings: Settings, store: ModelStore, *, model_url: str | None = None) -> Deploy:
    """The registry switches' `deploy`: fetch the version verified, then `roll_out` it."""
    url = endpoint_url(settings, model_url)

    def deploy(version: ModelVersion) -> str:
        return roll_out(fetch_verified(store, version), version, settings, model_url=url)

    return deploy


def verifier(store: ModelStore) -> Deploy:
    """`deploy` for a registry-only switch (`--no-rollout`): the version is verified, not served."""

    def verify(version: ModelVersion) -> str:
        fetch_verified(store, version)
        return "not rolled out: the endpoint keeps its model"

    return verify


def served_version(url: str, timeout_s: float = 5) -> str | None:
    """The version the model server at `url` serves (the attribute on every answer, /ping's
    included); None when it cannot be reached."""
    import requests  # only for the local server's /reload

    try:
        response = requests.get(f"{url.rstrip('/')}/ping", timeout=timeout_s)
    except requests.RequestException:
        return None
    attributes = response.headers.get("x-amzn-sagemaker-custom-attributes", "")
    return attributes.split("model_version=", 1)[1] if "model_version=" in attributes else None


def served_status(url: str, champion: str | None) -> str:
    """A status line's part: the served model, and a warning when it is not the champion (the
    runs then store nothing: each waits, failing, until `model rollout`)."""
    served = served_version(url)
    if served is None:
        return f"model: ? (no answer from {url})"
    if champion is not None and served != champion:
        return (
            f"model: ! serves {served}, the champion is {champion}: runs wait "
            "(`fraud-pipeline model rollout`)"
        )
    return f"model: {served}"
