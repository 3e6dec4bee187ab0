"""The IAM policies in infra/iam are least privilege and still allow what the code really calls."""

from __future__ import annotations

import json
from fnmatch import fnmatchcase
from string import Template
from typing import Any

import boto3

from fraud_pipeline.config import REPO_ROOT
from tests.support.aws import REGION, TARGET, deployer

IAM = REPO_ROOT / "infra" / "iam"
PLACEHOLDERS = {
    "ACCOUNT_ID": "123456789012",  # moto's account
    "REGION": REGION,
    "BUCKET": TARGET.bucket,
    "ARTIFACT_PREFIX": TARGET.prefix,
    "ENDPOINT_NAME": "fraud-xgboost",
    "ECR_REPOSITORY": "fraud-model-server",
    "EXECUTION_ROLE_NAME": "fraud-sagemaker-execution",
}
# Where an API operation's IAM action has another name (S3 multipart uploads count as PutObject).
ACTION_OF = {
    "s3:HeadObject": "s3:GetObject",
    "s3:CreateMultipartUpload": "s3:PutObject",
    "s3:UploadPart": "s3:PutObject",
    "s3:CompleteMultipartUpload": "s3:PutObject",
}
NO_RESOURCE_LEVEL = {
    "ecr:GetAuthorizationToken",
    "sagemaker:ListEndpointConfigs",
    "sagemaker:ListModels",
    "application-autoscaling:DescribeScalableTargets",
    "application-autoscaling:DescribeScalingPolicies",
}


def policy(name: str) -> list[dict[str, Any]]:
    text = Template((IAM / name).read_text()).substitute(PLACEHOLDERS)
    return json.loads(text)["Statement"]


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def allows(statements: list[dict[str, Any]], action: str, resource: str) -> bool:
    return any(
        statement["Effect"] == "Allow"
        and action in as_list(statement["Action"])
        and any(fnmatchcase(resource, pattern) for pattern in as_list(statement["Resource"]))
        for statement in statements
    )


def test_no_wildcard_actions_and_wildcard_resources_only_where_iam_has_no_choice():
    for path in IAM.glob("*.json"):
        for statement in json.loads(path.read_text())["Statement"]:
            actions = as_list(statement["Action"])
            assert not any("*" in action for action in actions), path.name
            if "*" in as_list(statement.get("Resource", [])):
                assert set(actions) <= NO_RESOURCE_LEVEL, (path.name, actions)


def test_airflow_may_only_invoke_the_fraud_endpoint():
    (statement,) = policy("airflow-invoke-policy.json")
    assert statement["Action"] == "sagemaker:InvokeEndpoint"
    endpoint = f"arn:aws:sagemaker:{REGION}:123456789012:endpoint/fraud-xgboost"
    assert allows([statement], "sagemaker:InvokeEndpoint", endpoint)
    assert not allows([statement], "sagemaker:InvokeEndpoint", endpoint + "-other")


def test_the_execution_role_reads_only_model_artifacts():
    statements = policy("sagemaker-execution-policy.json")
    artifact = f"arn:aws:s3:::{TARGET.bucket}/{TARGET.prefix}/v1/model.tar.gz"
    assert allows(statements, "s3:GetObject", artifact)
    assert not allows(statements, "s3:GetObject", f"arn:aws:s3:::{TARGET.bucket}/other/file")
    assert not any(
        action.startswith("s3:") and action != "s3:GetObject"
        for statement in statements
        for action in as_list(statement["Action"])
    )


def test_the_deployer_policy_allows_every_call_deploy_status_and_teardown_make(aws, release):
    """Run the real steps on moto, record each API call and the ARNs created, check the policy."""
    sagemaker, s3 = aws
    calls: set[str] = set()
    for client in (sagemaker, s3):
        prefix = client.meta.service_model.signing_name
        client.meta.events.register(
            "before-parameter-build",
            lambda model, prefix=prefix, **_: calls.add(f"{prefix}:{model.name}"),
        )
    steps = deployer(aws)
    result = steps.deploy(release)
    steps.status()
    endpoint_config = sagemaker.describe_endpoint_config(EndpointConfigName=result.endpoint_config)
    created = {
        "sagemaker:DeleteEndpoint": sagemaker.describe_endpoint(EndpointName=result.endpoint)[
            "EndpointArn"
        ],
        "sagemaker:DeleteEndpointConfig": endpoint_config["EndpointConfigArn"],
        "sagemaker:DeleteModel": sagemaker.describe_model(ModelName=result.model)["ModelArn"],
    }
    steps.teardown(delete_models=True)

    statements = policy("deployer-policy.json")
    actions = {ACTION_OF.get(call, call) for call in calls}
    actions.add("sagemaker:AddTags")  # Create* with Tags also needs AddTags
    allowed = {action for statement in statements for action in as_list(statement["Action"])}
    assert {"sagemaker:CreateModel", "s3:PutObject", "sagemaker:ListTags"} <= actions
    assert actions <= allowed, actions - allowed
    assert "sagemaker:UpdateEndpoint" in allowed  # moto lacks it; the Stubber test calls it
    for action, arn in created.items():
        assert allows(statements, action, arn), (action, arn)
    key = result.model_data_url.removeprefix("s3://")
    assert allows(statements, "s3:PutObject", f"arn:aws:s3:::{key}")
    passed = "arn:aws:iam::123456789012:role/fraud-sagemaker-execution"
    assert allows(statements, "iam:PassRole", passed) and passed == TARGET.role_arn


def test_the_deployer_policy_allows_every_autoscaling_call_of_a_realtime_endpoint(aws, release):
    """A real-time deploy, re-deploy and teardown on moto, Application Auto Scaling included."""
    sagemaker, s3 = aws
    scaling = boto3.client("application-autoscaling", region_name=REGION)
    calls: set[str] = set()
    for client in (sagemaker, s3, scaling):
        prefix = client.meta.service_model.signing_name
        client.meta.events.register(
            "before-parameter-build",
            lambda model, prefix=prefix, **_: calls.add(f"{prefix}:{model.name}"),
        )
    steps = deployer(aws, kind="realtime")
    steps.autoscaling = scaling
    steps.deploy(release)
    steps.deploy(release)
    (target,) = scaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    steps.teardown()

    statements = policy("deployer-policy.json")
    actions = {ACTION_OF.get(call, call) for call in calls}
    assert {
        "application-autoscaling:RegisterScalableTarget",
        "application-autoscaling:PutScalingPolicy",
        "application-autoscaling:DeleteScalingPolicy",
        "application-autoscaling:DeregisterScalableTarget",
    } <= actions
    allowed = {action for statement in statements for action in as_list(statement["Action"])}
    assert actions <= allowed, actions - allowed
    scalable = target["ScalableTargetARN"]
    for action in ("RegisterScalableTarget", "PutScalingPolicy", "DeregisterScalableTarget"):
        assert allows(statements, f"application-autoscaling:{action}", scalable), scalable
    # Target tracking creates its CloudWatch alarms as the caller; AWS names them after the variant.
    alarm = (
        f"arn:aws:cloudwatch:{REGION}:123456789012:alarm:"
        "TargetTracking-endpoint/fraud-xgboost/variant/AllTraffic-AlarmHigh-0a1b"
    )
    assert allows(statements, "cloudwatch:PutMetricAlarm", alarm)
    assert not allows(statements, "cloudwatch:PutMetricAlarm", alarm.replace("xgboost", "other"))
