"""Real model servers on loopback, and moto's AWS control plane, for the scoring tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any, Literal

import boto3
import pytest
from botocore.config import Config
from moto import mock_aws

from fraud_pipeline.config import get_settings
from fraud_pipeline.net import free_port
from fraud_pipeline.serving.model_server import build_server
from fraud_pipeline.serving.sagemaker_deploy import Deployer, EndpointSpec, Release, Target


def runtime_for(url: str, read_timeout: float = 10.0):
    """A plain boto3 sagemaker-runtime client pointed at a local server, botocore retries off."""
    return boto3.client(
        "sagemaker-runtime",
        region_name="eu-west-3",
        endpoint_url=url,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(
            retries={"total_max_attempts": 1}, read_timeout=read_timeout, connect_timeout=1
        ),
    )


@pytest.fixture(scope="session")
def model_server_url() -> Iterator[str]:
    """The real model server (same code as the SageMaker container) on the committed artifacts."""
    port = free_port()
    server = build_server(get_settings().artifacts_dir, port=port)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()


REGION = "eu-west-3"
ROLE = "arn:aws:iam::123456789012:role/fraud-sagemaker-execution"
IMAGE = "123456789012.dkr.ecr.eu-west-3.amazonaws.com/fraud-model-server:1"
TARGET = Target(
    bucket="fraud-models", prefix="fraud-pipeline/models", role_arn=ROLE, image_uri=IMAGE
)
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
}


@pytest.fixture
def aws(monkeypatch) -> Iterator[tuple[Any, Any]]:
    """moto's SageMaker and S3 (with our bucket); fake credentials so nothing reaches AWS."""
    for name, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(
            Bucket=TARGET.bucket, CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        yield boto3.client("sagemaker", region_name=REGION), s3


@pytest.fixture(scope="module")
def release() -> Release:
    """The committed model artifacts, verified."""
    return Release.from_artifacts(get_settings().artifacts_dir)


def deployer(
    aws, kind: Literal["serverless", "realtime"] = "serverless", lines: list[str] | None = None
) -> Deployer:
    sagemaker, s3 = aws
    spec = EndpointSpec(name="fraud-xgboost", kind=kind, memory_mb=3072, max_concurrency=7)
    echo = lines.append if lines is not None else (lambda line: None)
    return Deployer(sagemaker, s3, spec, TARGET, poll_s=0, timeout_s=5, echo=echo)
