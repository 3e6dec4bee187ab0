"""Make the scoring endpoint serve the registry's champion after `model promote`/`rollback`.

Locally (SAGEMAKER_ENDPOINT_URL set) the model server started with `serve-model --reload` is
asked to reload the champion's artifacts, with the registry's SHA-256s: it verifies them and
swaps the model in place, or refuses and keeps serving the old one. On AWS the champion's
model.tar.gz goes through the deploy steps: a new SageMaker model and endpoint config, then
update_endpoint (SageMaker serves the old config until the new one is InService).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fraud_pipeline.config import Settings
from fraud_pipeline.registry.versions import ModelVersion


class RolloutError(RuntimeError):
    """The endpoint did not take the champion (the registry change itself is committed)."""


def reload_local_server(
    url: str, model_dir: Path, version: ModelVersion, timeout_s: float = 60
) -> str:
    """POST /reload to the local model server; the version it now serves."""
    import requests

    try:
        response = requests.post(
            f"{url.rstrip('/')}/reload",
            json={"model_dir": str(Path(model_dir).resolve()), "sha256": version.sha256},
            timeout=timeout_s,
        )
    except requests.ConnectionError as error:
        raise RolloutError(f"no model server at {url}: {error}") from error
    if response.status_code == 404:
        raise RolloutError(
            f"the model server at {url} cannot reload: start it with "
            "`fraud-pipeline serve-model --reload`, then `fraud-pipeline model rollout`"
        )
    if response.status_code != 200:
        raise RolloutError(f"the model server at {url} refused: {response.text}")
    return str(json.loads(response.text)["model_version"])


def update_sagemaker(deployer: Any, model_dir: Path, *, wait: bool = True) -> Any:
    """The deploy steps on the champion's verified artifacts; the existing endpoint is updated."""
    from fraud_pipeline.serving.sagemaker_deploy import Release

    return deployer.deploy(Release.from_artifacts(model_dir), must_exist=True, wait=wait)


def roll_out(
    model_dir: Path, version: ModelVersion, settings: Settings, *, model_url: str | None = None
) -> str:
    """Point the endpoint at `version`: the local model server at `model_url` (default
    SAGEMAKER_ENDPOINT_URL; `make run --free-ports` has its own), else SageMaker; what happened."""
    url = model_url or settings.sagemaker_endpoint_url
    if url:
        served = reload_local_server(url, model_dir, version)
        return f"model server {url} now serves {served}"
    from fraud_pipeline.serving.sagemaker_deploy import deployer_from_settings

    result = update_sagemaker(deployer_from_settings(settings), model_dir)
    return f"endpoint {result.endpoint} {result.action}: config {result.endpoint_config}"
