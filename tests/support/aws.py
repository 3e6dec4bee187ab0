"""Real model servers on loopback, and moto's AWS control plane, for the scoring tests."""

from __future__ import annotations

from typing import Any, Literal

import boto3
from botocore.config import Config

from fraud_pipeline.config import Settings
from fraud_pipeline.serving.sagemaker_deploy import Autoscaling, Deployer, EndpointSpec, Target


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


def autoscaling(**overrides: Any) -> Autoscaling:
    """The settings' autoscaling, `overrides` (min_instances=2...) replacing some settings."""
    named = {f"sagemaker_autoscaling_{key}": value for key, value in overrides.items()}
    return Autoscaling.from_settings(Settings(**named))


def deployer(
    aws, kind: Literal["serverless", "realtime"] = "serverless", lines: list[str] | None = None
) -> Deployer:
    sagemaker, s3 = aws
    spec = EndpointSpec(
        name="fraud-xgboost",
        autoscaling=autoscaling(),
        kind=kind,
        memory_mb=3072,
        max_concurrency=7,
    )
    echo = lines.append if lines is not None else (lambda line: None)
    return Deployer(sagemaker, s3, spec, TARGET, poll_s=0, timeout_s=5, echo=echo)


NOT_FOUND = {"service_error_code": "ValidationException", "service_message": "Could not find"}


def recording_sagemaker() -> tuple[Any, list[tuple[str, dict[str, Any]]]]:
    """A sagemaker client for botocore's Stubber (moto lacks update_endpoint), and the list of
    (operation, parameters) it is called with."""
    client = boto3.client("sagemaker", region_name=REGION)
    sent: list[tuple[str, dict[str, Any]]] = []
    client.meta.events.register(
        "before-parameter-build.sagemaker.*",
        lambda params, model, **_: sent.append((model.name, dict(params))),
    )
    return client, sent


ENDPOINT_ARN = "arn:aws:sagemaker:eu-west-3:123456789012:endpoint/fraud-xgboost"


def stub_in_place_update(stub: Any, current_config: str, polls: tuple[str, ...]) -> None:
    """Queue on a Stubber what an update sees: the endpoint InService on `current_config`,
    update_endpoint, then one describe_endpoint per status in `polls` (the last on the new one)."""
    from botocore.stub import ANY

    endpoint = {
        "EndpointName": "fraud-xgboost",
        "EndpointArn": ENDPOINT_ARN,
        "CreationTime": 0,
        "LastModifiedTime": 0,
    }
    stub.add_response(
        "describe_endpoint",
        {**endpoint, "EndpointStatus": "InService", "EndpointConfigName": current_config},
    )
    stub.add_response(
        "update_endpoint",
        {"EndpointArn": ENDPOINT_ARN},
        {"EndpointName": "fraud-xgboost", "EndpointConfigName": ANY},
    )
    for number, status in enumerate(polls, start=1):
        config = "new" if number == len(polls) else current_config
        stub.add_response(
            "describe_endpoint",
            {**endpoint, "EndpointStatus": status, "EndpointConfigName": config},
        )
