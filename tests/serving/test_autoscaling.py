"""Autoscaling of a real-time endpoint under moto's Application Auto Scaling: set up with the
endpoint, unchanged by a re-deploy, removed before an update and at teardown; none for serverless."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from fraud_pipeline.config import Settings
from fraud_pipeline.serving.sagemaker_deploy import (
    SCALABLE_DIMENSION,
    SCALING_METRIC,
    Autoscaling,
    Deployer,
    EndpointSpec,
    Release,
)
from tests.support.aws import (
    NOT_FOUND,
    REGION,
    TARGET,
    autoscaling,
    recording_sagemaker,
    stub_in_place_update,
)

RESOURCE = "endpoint/fraud-xgboost/variant/AllTraffic"


def realtime(aws, scaling: Autoscaling | None = None, lines: list[str] | None = None) -> Deployer:
    spec = EndpointSpec(
        name="fraud-xgboost",
        kind="realtime",
        instance_type="ml.m5.large",
        instance_count=2,
        autoscaling=scaling or autoscaling(min_instances=2, max_instances=6, target_invocations=90),
    )
    echo = lines.append if lines is not None else (lambda line: None)
    return Deployer(*aws, spec, TARGET, poll_s=0, timeout_s=5, echo=echo)


def targets() -> list[dict[str, Any]]:
    client = boto3.client("application-autoscaling", region_name=REGION)
    found: list[dict[str, Any]] = client.describe_scalable_targets(ServiceNamespace="sagemaker")[
        "ScalableTargets"
    ]
    return found


def policies() -> list[dict[str, Any]]:
    client = boto3.client("application-autoscaling", region_name=REGION)
    found: list[dict[str, Any]] = client.describe_scaling_policies(ServiceNamespace="sagemaker")[
        "ScalingPolicies"
    ]
    return found


def test_a_realtime_deploy_registers_the_variant_and_its_target_tracking_policy(aws, release):
    result = realtime(aws).deploy(release)

    (target,) = targets()
    assert target["ResourceId"] == RESOURCE
    assert target["ScalableDimension"] == SCALABLE_DIMENSION
    assert (target["MinCapacity"], target["MaxCapacity"]) == (2, 6)
    (policy,) = policies()
    assert policy["PolicyType"] == "TargetTrackingScaling"
    assert policy["ResourceId"] == RESOURCE
    tracking = policy["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["TargetValue"] == 90
    assert tracking["PredefinedMetricSpecification"]["PredefinedMetricType"] == SCALING_METRIC
    assert (tracking["ScaleInCooldown"], tracking["ScaleOutCooldown"]) == (300, 60)
    assert result.autoscaling == {
        "min_instances": 2,
        "max_instances": 6,
        "target_invocations": 90,
    }
    assert realtime(aws).status()["autoscaling"] == {"min_instances": 2, "max_instances": 6}


def test_redeploying_keeps_one_target_and_one_policy_and_applies_new_bounds(aws, release):
    realtime(aws).deploy(release)
    again = realtime(aws).deploy(release)
    assert again.action == "unchanged"
    assert len(targets()) == 1 and len(policies()) == 1

    wider = autoscaling(min_instances=1, max_instances=10, target_invocations=120)
    realtime(aws, wider).deploy(release)
    (target,) = targets()
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 10)
    (policy,) = policies()
    assert policy["TargetTrackingScalingPolicyConfiguration"]["TargetValue"] == 120


def test_a_serverless_endpoint_gets_no_autoscaling(aws, release):
    result = Deployer(
        *aws, EndpointSpec("fraud-xgboost", autoscaling()), TARGET, poll_s=0, echo=lambda line: None
    ).deploy(release)
    assert result.autoscaling is None
    assert targets() == [] and policies() == []


def test_teardown_removes_policy_and_target_before_the_endpoint(aws, release):
    realtime(aws).deploy(release)
    lines: list[str] = []
    deleted = realtime(aws, lines=lines).teardown()

    assert deleted[:3] == [
        "scaling-policy/fraud-xgboost-invocations-per-instance",
        f"scalable-target/{RESOURCE}",
        "endpoint/fraud-xgboost",
    ]
    assert targets() == [] and policies() == []
    assert realtime(aws).teardown() == []  # idempotent
    assert realtime(aws).status()["status"] == "absent"


def test_an_update_deregisters_first_and_a_serverless_switch_leaves_none(aws, release):
    """AWS refuses to change the instances of a scaled variant: deregister, update, register."""
    realtime(aws).deploy(release)
    deployer = realtime(aws)
    removed = deployer.remove_autoscaling()
    assert removed == [
        "scaling-policy/fraud-xgboost-invocations-per-instance",
        f"scalable-target/{RESOURCE}",
    ]
    assert deployer.remove_autoscaling() == []  # nothing left to remove
    serverless = Deployer(
        *aws, EndpointSpec("fraud-xgboost", autoscaling()), TARGET, poll_s=0, echo=lambda line: None
    )
    realtime(aws).sync_autoscaling()
    assert serverless.sync_autoscaling() is None
    assert targets() == [] and policies() == []


def test_not_waiting_leaves_autoscaling_for_the_next_deploy(aws, release):
    lines: list[str] = []
    result = realtime(aws, lines=lines).deploy(release, wait=False)
    assert result.autoscaling is None and targets() == []
    assert any("deploy again" in line for line in lines)
    assert realtime(aws).deploy(release).autoscaling is not None
    assert len(targets()) == 1


def test_autoscaling_settings_reach_the_spec_and_bounds_are_checked():
    spec = EndpointSpec.from_settings(
        Settings(
            sagemaker_autoscaling_min_instances=3,
            sagemaker_autoscaling_max_instances=8,
            sagemaker_autoscaling_target_invocations=250,
        )
    )
    assert spec.autoscaling == Autoscaling(3, 8, 250.0, 300, 60)
    with pytest.raises(ValueError, match="MAX_INSTANCES must be >="):
        Settings(sagemaker_autoscaling_min_instances=5, sagemaker_autoscaling_max_instances=2)


def test_a_realtime_update_deregisters_before_and_registers_after_the_update(aws, release):
    """v1 really deployed on moto; v2's SageMaker calls go to a Stubber (moto lacks
    update_endpoint), its autoscaling calls to moto; one log of both in call order."""
    first = realtime(aws).deploy(release)
    stubbed, sent = recording_sagemaker()
    scaling = boto3.client("application-autoscaling", region_name=REGION)
    scaling.meta.events.register(
        "before-parameter-build.application-autoscaling.*",
        lambda params, model, **_: sent.append((model.name, dict(params))),
    )
    arn = "arn:aws:sagemaker:eu-west-3:123456789012"
    with Stubber(stubbed) as stub:
        stub.add_client_error("describe_model", **NOT_FOUND)
        stub.add_response("create_model", {"ModelArn": f"{arn}:model/m"})
        stub.add_client_error("describe_endpoint_config", **NOT_FOUND)
        stub.add_response("create_endpoint_config", {"EndpointConfigArn": f"{arn}:ec/c"})
        stub_in_place_update(stub, first.endpoint_config, polls=("InService",))
        spec = realtime(aws).spec
        v2 = Release("xgb-next-version", release.tarball, release.sha256)
        result = Deployer(
            stubbed, aws[1], spec, TARGET, poll_s=0, echo=lambda line: None, autoscaling=scaling
        ).deploy(v2, must_exist=True)
        stub.assert_no_pending_responses()

    order = [name for name, _ in sent]
    update = order.index("UpdateEndpoint")
    assert "DeregisterScalableTarget" in order[:update]
    assert "DeleteScalingPolicy" in order[:update]
    assert order[update + 1 :].count("RegisterScalableTarget") == 1
    assert order[update + 1 :].count("PutScalingPolicy") == 1
    assert result.action == "updated" and len(targets()) == 1 and len(policies()) == 1
