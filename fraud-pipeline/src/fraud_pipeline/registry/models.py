"""Registered versions as loaded models: the store MODEL_STORE names, and the champion.

The endpoint serves the registry's champion, so the transformer that builds its input and the
booster that explains its alerts must be the champion's too: after a promotion, features built
with the committed transformer would be scored by a model fitted on another one. The committed
artifacts (ARTIFACTS_DIR) are used while they are the champion, or while the registry has none;
otherwise the champion's files from the store, verified against the registry's SHA-256s.
Each version is loaded once per process (a DAG task, a back-fill, the shadow scorer).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from psycopg2.extensions import connection as Connection

from fraud_pipeline.config import Settings, get_settings
from fraud_pipeline.model.artifacts import load_model, read_metadata
from fraud_pipeline.model.checksums import ArtifactError
from fraud_pipeline.registry import versions
from fraud_pipeline.registry.store import ModelStore, store_from_url

if TYPE_CHECKING:
    from fraud_pipeline.model.artifacts import Model

_LOADED: dict[str, Model] = {}  # version -> its verified, loaded artifacts (this process)
_LOADED_LOCK = threading.Lock()


def model_store(settings: Settings) -> ModelStore:
    """The store MODEL_STORE names, S3 copies cached under the local state folder."""
    return store_from_url(settings.model_store, settings.local_state_dir / "model-cache")


def forget_models() -> None:
    """Forget the loaded versions (a test that needs a fresh task process's view)."""
    with _LOADED_LOCK:
        _LOADED.clear()


def version_model(version: versions.ModelVersion, store: ModelStore) -> Model:
    """`version`'s artifacts, verified against the registry then loaded, once per process."""
    with _LOADED_LOCK:
        model = _LOADED.get(version.version)
        if model is None:
            model = load_model(versions.fetch_verified(store, version))
            if model.version != version.version:
                raise ArtifactError(
                    f"{version.location} holds model {model.version}, not {version.version}"
                )
            _LOADED[version.version] = model
    return model


def promoted_champion(conn: Connection, settings: Settings) -> versions.ModelVersion | None:
    """The registry's champion when it is not the committed model in ARTIFACTS_DIR, else None."""
    with conn:
        champion = versions.champion(conn)
    if champion is None:
        return None
    try:
        committed = read_metadata(settings.artifacts_dir).get("model_version")
    except (ArtifactError, OSError, ValueError):
        committed = None
    return None if champion.version == committed else champion


def champion_version(conn: Connection, settings: Settings | None = None) -> str:
    """The version `champion_model` builds features with, without loading it: the registry's
    champion, else (an empty registry) the committed model's."""
    with conn:
        champion = versions.champion(conn)
    if champion is not None:
        return champion.version
    return str(read_metadata((settings or get_settings()).artifacts_dir)["model_version"])


def champion_model(conn: Connection, settings: Settings | None = None) -> Model:
    """The model to build features and reasons with: the registry's champion (see above)."""
    settings = settings or get_settings()
    champion = promoted_champion(conn, settings)
    if champion is None:
        return load_model(settings.artifacts_dir)
    return version_model(champion, model_store(settings))
