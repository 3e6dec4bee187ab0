"""Where registered model versions keep their artifacts: a local folder, or S3 in production.

A version's files are written once under `<store>/<version>/` and never replaced: the registry
records their SHA-256s, and whoever fetches them (the model server's reload, a SageMaker
deploy) verifies them against those before use, so the store itself need not be trusted.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from fraud_pipeline.model.checksums import ArtifactError


class ModelStore(Protocol):
    def put(self, version: str, source: Path, names: Iterable[str]) -> str:
        """Copy `names` from `source` as `version`; the location the registry records."""

    def fetch(self, location: str) -> Path:
        """A local folder holding the files stored at `location` (not yet verified)."""


@dataclass(frozen=True)
class LocalStore:
    root: Path

    def put(self, version: str, source: Path, names: Iterable[str]) -> str:
        target = self.root / version
        if target.exists():
            raise ArtifactError(f"{target} exists: model version {version} is already stored")
        staging = self.root / f".{version}.partial"  # a crash never leaves a half version
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for name in names:
            shutil.copy2(source / name, staging / name)
        staging.rename(target)
        return str(target)

    def fetch(self, location: str) -> Path:
        return Path(location)


@dataclass(frozen=True)
class S3Store:
    """s3://bucket/prefix/<version>/<file>; fetched copies are cached under `cache_dir`."""

    client: Any  # boto3 s3 client
    bucket: str
    prefix: str
    cache_dir: Path

    def put(self, version: str, source: Path, names: Iterable[str]) -> str:
        key = f"{self.prefix}/{version}".lstrip("/")
        listed = self.client.list_objects_v2(Bucket=self.bucket, Prefix=f"{key}/", MaxKeys=1)
        if listed.get("KeyCount", 0):
            raise ArtifactError(f"s3://{self.bucket}/{key}/ exists: {version} is already stored")
        for name in names:
            self.client.upload_file(str(source / name), self.bucket, f"{key}/{name}")
        return f"s3://{self.bucket}/{key}"

    def fetch(self, location: str) -> Path:
        url = urlparse(location)
        key = url.path.lstrip("/")
        target = self.cache_dir / key.rsplit("/", 1)[-1]
        target.mkdir(parents=True, exist_ok=True)
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=url.netloc, Prefix=f"{key}/"
        )
        for page in pages:
            for item in page.get("Contents", []):
                name = item["Key"][len(key) + 1 :]
                if "/" in name or not name:
                    continue  # a version's files are flat: nothing else is fetched
                self.client.download_file(url.netloc, item["Key"], str(target / name))
        return target


def store_from_url(url: str, cache_dir: Path, s3_client: Any = None) -> ModelStore:
    """The store MODEL_STORE names: `s3://bucket/prefix` (boto3's credentials) or a folder."""
    if url.startswith("s3://"):
        parsed = urlparse(url)
        if s3_client is None:
            import boto3  # heavy; only when AWS is used

            s3_client = boto3.client("s3")
        return S3Store(s3_client, parsed.netloc, parsed.path.strip("/"), cache_dir)
    return LocalStore(Path(url))
