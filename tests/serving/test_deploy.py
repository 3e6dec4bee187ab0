"""The SageMaker deploy steps against moto's control plane (and botocore's Stubber for
update_endpoint, which moto lacks): what is created, with which parameters, and idempotence."""

from __future__ import annotations

import json
import re

import boto3
import pytest
from botocore.stub import ANY, Stubber

from fraud_pipeline.cli import main
from fraud_pipeline.config import Settings, get_settings
from fraud_pipeline.serving.sagemaker_deploy import (
    OWNER_TAG,
    Deployer,
    DeployError,
    EndpointSpec,
    Release,
    Target,
    resource_name,
)
from tests.support.aws import (
    IMAGE,
    NOT_FOUND,
    REGION,
    ROLE,
    TARGET,
    autoscaling,
    deployer,
    recording_sagemaker,
    stub_in_place_update,
)


def test_deploy_uploads_and_creates_model_config_and_endpoint(aws, release):
    sagemaker, s3 = aws
    result = deployer(aws).deploy(release)

    assert result.action == "created"
    key = f"fraud-pipeline/models/{release.version}/model.tar.gz"
    assert result.model_data_url == f"s3://fraud-models/{key}"
    stored = s3.get_object(Bucket="fraud-models", Key=key)
    assert stored["Body"].read() == release.tarball.read_bytes()
    assert stored["Metadata"]["sha256"] == release.sha256

    model = sagemaker.describe_model(ModelName=result.model)
    assert model["ExecutionRoleArn"] == ROLE
    assert model["PrimaryContainer"]["Image"] == IMAGE
    assert model["PrimaryContainer"]["ModelDataUrl"] == result.model_data_url
    assert model["PrimaryContainer"]["Environment"]["MODEL_VERSION"] == release.version

    config = sagemaker.describe_endpoint_config(EndpointConfigName=result.endpoint_config)
    (variant,) = config["ProductionVariants"]
    assert variant["ModelName"] == result.model
    assert variant["ServerlessConfig"] == {"MemorySizeInMB": 3072, "MaxConcurrency": 7}
    assert "InstanceType" not in variant

    endpoint = sagemaker.describe_endpoint(EndpointName="fraud-xgboost")
    assert endpoint["EndpointStatus"] == "InService"
    assert endpoint["EndpointConfigName"] == result.endpoint_config


def test_deploying_twice_changes_nothing_and_duplicates_nothing(aws, release):
    sagemaker, s3 = aws
    first = deployer(aws).deploy(release)
    lines: list[str] = []
    second = deployer(aws, lines=lines).deploy(release)

    assert second.action == "unchanged" and second == type(second)(
        **{**first.__dict__, "action": "unchanged"}
    )
    assert any("already uploaded" in line for line in lines)
    assert len(sagemaker.list_models()["Models"]) == 1
    assert len(sagemaker.list_endpoint_configs()["EndpointConfigs"]) == 1
    assert len(sagemaker.list_endpoints()["Endpoints"]) == 1
    assert s3.list_objects_v2(Bucket="fraud-models")["KeyCount"] == 1


def test_a_realtime_endpoint_config_asks_for_instances(aws, release):
    sagemaker, _ = aws
    spec = EndpointSpec(
        name="fraud-xgboost",
        autoscaling=autoscaling(),
        kind="realtime",
        instance_type="ml.m5.large",
        instance_count=2,
    )
    result = Deployer(*aws, spec, TARGET, poll_s=0, echo=lambda line: None).deploy(release)
    (variant,) = sagemaker.describe_endpoint_config(EndpointConfigName=result.endpoint_config)[
        "ProductionVariants"
    ]
    assert variant["InstanceType"] == "ml.m5.large"
    assert variant["InitialInstanceCount"] == 2
    assert "ServerlessConfig" not in variant


def test_a_new_model_version_updates_the_endpoint_in_place(aws, release):
    """v1 really deployed on moto; the v2 deploy's SageMaker calls go to a Stubber."""
    _, s3 = aws
    first = deployer(aws).deploy(release)
    v2 = Release("xgb-next-version", release.tarball, release.sha256)

    stubbed, sent = recording_sagemaker()
    not_found = NOT_FOUND
    with Stubber(stubbed) as stub:
        stub.add_client_error("describe_model", **not_found)
        stub.add_response(
            "create_model",
            {"ModelArn": "arn:aws:sagemaker:eu-west-3:123456789012:model/m"},
            {
                "ModelName": ANY,
                "ExecutionRoleArn": ROLE,
                "PrimaryContainer": {
                    "Image": IMAGE,
                    "ModelDataUrl": f"s3://fraud-models/fraud-pipeline/models/{v2.version}/model.tar.gz",
                    "Environment": {"MODEL_VERSION": v2.version, "MODEL_SHA256": v2.sha256},
                },
                "Tags": ANY,
            },
        )
        stub.add_client_error("describe_endpoint_config", **not_found)
        stub.add_response(
            "create_endpoint_config",
            {"EndpointConfigArn": "arn:aws:sagemaker:eu-west-3:123456789012:endpoint-config/c"},
        )
        stub_in_place_update(stub, first.endpoint_config, polls=("Updating", "InService"))
        result = Deployer(
            stubbed, s3, deployer(aws).spec, TARGET, poll_s=0, echo=lambda line: None
        ).deploy(v2, must_exist=True)
        stub.assert_no_pending_responses()

    calls = dict(sent)
    assert result.action == "updated"
    assert calls["UpdateEndpoint"]["EndpointConfigName"] == result.endpoint_config
    assert (
        calls["CreateEndpointConfig"]["EndpointConfigName"]
        == result.endpoint_config
        != first.endpoint_config
    )
    assert (
        calls["CreateEndpointConfig"]["ProductionVariants"][0]["ModelName"]
        == calls["CreateModel"]["ModelName"]
    )
    assert calls["CreateModel"]["ModelName"] != first.model
    assert s3.head_object(
        Bucket="fraud-models", Key=f"fraud-pipeline/models/{v2.version}/model.tar.gz"
    )


def test_update_refuses_a_missing_endpoint(aws, release):
    with pytest.raises(DeployError, match="does not exist"):
        deployer(aws).deploy(release, must_exist=True)


def test_a_version_already_uploaded_with_other_bytes_is_refused(aws, release):
    _, s3 = aws
    key = f"fraud-pipeline/models/{release.version}/model.tar.gz"
    s3.put_object(Bucket="fraud-models", Key=key, Body=b"other", Metadata={"sha256": "0" * 64})
    with pytest.raises(DeployError, match="immutable"):
        deployer(aws).deploy(release)


def test_status_names_the_model_version_behind_the_endpoint(aws, release):
    assert deployer(aws).status()["status"] == "absent"
    deployer(aws).deploy(release)
    status = deployer(aws).status()
    assert status["status"] == "InService"
    assert status["variants"][0]["model_version"] == release.version
    assert status["variants"][0]["serverless"] == {"MemorySizeInMB": 3072, "MaxConcurrency": 7}


def test_teardown_deletes_endpoint_and_configs_then_models_and_nothing_foreign(aws, release):
    sagemaker, _ = aws
    result = deployer(aws).deploy(release)
    deployer(aws, kind="realtime").ensure_endpoint_config(release, result.model)  # an older one
    sagemaker.create_endpoint_config(  # someone else's, with a similar name
        EndpointConfigName="fraud-xgboost-theirs",
        ProductionVariants=[
            {
                "VariantName": "v",
                "ModelName": result.model,
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
        ],
    )

    deleted = deployer(aws).teardown()
    assert deleted[0] == "endpoint/fraud-xgboost"
    assert sum(item.startswith("endpoint-config/") for item in deleted) == 2
    assert sagemaker.list_endpoints()["Endpoints"] == []
    remaining = [
        c["EndpointConfigName"] for c in sagemaker.list_endpoint_configs()["EndpointConfigs"]
    ]
    assert remaining == ["fraud-xgboost-theirs"]
    assert len(sagemaker.list_models()["Models"]) == 1  # models are kept unless asked

    assert deployer(aws).teardown(delete_models=True) == [f"model/{result.model}"]
    assert sagemaker.list_models()["Models"] == []
    assert deployer(aws).teardown(delete_models=True) == []  # idempotent


def test_resource_names_are_valid_sagemaker_names():
    long = resource_name("fraud-xgboost", "v" * 80, "abc")
    assert len(long) <= 63 and re.fullmatch(r"[A-Za-z0-9](-*[A-Za-z0-9])*", long)
    assert long != resource_name("fraud-xgboost", "v" * 81, "abc")
    assert resource_name("fraud_xgboost", "1.2.3") == "fraud-xgboost-1-2-3"


def test_deploy_settings_must_be_set_and_builtin_image_resolves():
    with pytest.raises(
        DeployError, match=r"SAGEMAKER_BUCKET.*SAGEMAKER_ROLE_ARN.*SAGEMAKER_IMAGE_URI"
    ):
        Target.from_settings(
            Settings(sagemaker_bucket=None, sagemaker_role_arn=None, sagemaker_image_uri=None)
        )
    target = Target.from_settings(
        Settings(
            sagemaker_bucket="b",
            sagemaker_role_arn=ROLE,
            sagemaker_image_uri="builtin-xgboost",
            aws_region=REGION,
        )
    )
    assert re.fullmatch(
        r"\d+\.dkr\.ecr\.eu-west-3\.amazonaws\.com/sagemaker-xgboost:3\.0-5", target.image_uri
    )


def test_cli_deploy_status_update_teardown(aws, monkeypatch, capsys):
    """`fraud-pipeline sagemaker ...` as `make endpoint-up/down` run it, configured by env."""
    for name, value in {
        "SAGEMAKER_BUCKET": TARGET.bucket,
        "SAGEMAKER_ROLE_ARN": ROLE,
        "SAGEMAKER_IMAGE_URI": IMAGE,
        "SAGEMAKER_ENDPOINT_NAME": "fraud-cli",
        "SAGEMAKER_ENDPOINT_TYPE": "realtime",
        "AWS_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    monkeypatch.setattr("fraud_pipeline.serving.sagemaker_deploy.Deployer.poll_s", 0.0)

    def cli(*args: str) -> tuple[int, str]:
        code = main(["sagemaker", *args])
        return code, capsys.readouterr().out

    try:
        code, out = cli("update")
        assert code == 1 and "endpoint fraud-cli does not exist" in out
        code, out = cli("deploy", "--endpoint-type", "serverless")
        assert code == 0 and json.loads(out[out.index("{") :])["action"] == "created"
        code, out = cli("status")
        status = json.loads(out)
        assert status["status"] == "InService" and status["variants"][0]["serverless"]
        code, out = cli("teardown", "--models")
        assert code == 0 and "deleting endpoint fraud-cli" in out and "deleting model" in out
        assert json.loads(cli("status")[1])["status"] == "absent"
    finally:
        get_settings.cache_clear()


def test_owner_tag_marks_what_teardown_may_delete(aws, release):
    sagemaker, _ = aws
    result = deployer(aws).deploy(release)
    arn = sagemaker.describe_endpoint_config(EndpointConfigName=result.endpoint_config)[
        "EndpointConfigArn"
    ]
    tags = sagemaker.list_tags(ResourceArn=arn)["Tags"]
    assert {"Key": OWNER_TAG, "Value": "fraud-xgboost"} in tags


ENDPOINT = {  # describe_endpoint's answer, less the status
    "EndpointName": "fraud-xgboost",
    "EndpointArn": "arn:aws:sagemaker:eu-west-3:123456789012:endpoint/fraud-xgboost",
    "EndpointConfigName": "fraud-xgboost-v1-abc",
    "CreationTime": 0,
    "LastModifiedTime": 0,
}


def stubbable_sagemaker():
    """A sagemaker client for a Stubber (fake credentials: nothing reaches AWS)."""
    return boto3.client(
        "sagemaker", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x"
    )


def test_waiting_reports_a_failed_endpoint_with_its_reason():
    sagemaker = stubbable_sagemaker()
    endpoint = ENDPOINT
    lines: list[str] = []
    with Stubber(sagemaker) as stub:
        stub.add_response("describe_endpoint", {**endpoint, "EndpointStatus": "Creating"})
        stub.add_response(
            "describe_endpoint",
            {**endpoint, "EndpointStatus": "Failed", "FailureReason": "ping failed on /ping"},
        )
        waiting = Deployer(
            sagemaker,
            None,
            EndpointSpec("fraud-xgboost", autoscaling()),
            poll_s=0,
            echo=lines.append,
        )
        with pytest.raises(DeployError, match=r"is Failed: ping failed on /ping.*teardown"):
            waiting.wait_in_service()
    assert [line.split(":")[1].split()[0] for line in lines] == ["Creating", "Failed"]


def test_teardown_waits_until_the_endpoint_is_gone_and_says_when_its_deletion_fails():
    """boto3's `endpoint_deleted` waiter: Deleting is waited through; Failed stops with why."""
    sagemaker = stubbable_sagemaker()
    endpoint = ENDPOINT
    lines: list[str] = []
    deleting = Deployer(
        sagemaker, None, EndpointSpec("fraud-xgboost", None), poll_s=0, echo=lines.append
    )
    with Stubber(sagemaker) as stub:
        stub.add_response("describe_endpoint", {**endpoint, "EndpointStatus": "Deleting"})
        stub.add_client_error("describe_endpoint", **NOT_FOUND)
        deleting.wait_deleted()
        stub.assert_no_pending_responses()
        stub.add_response("describe_endpoint", {**endpoint, "EndpointStatus": "Deleting"})
        stub.add_response(
            "describe_endpoint",
            {**endpoint, "EndpointStatus": "Failed", "FailureReason": "instance stuck"},
        )
        with pytest.raises(DeployError, match="was not deleted: Failed: instance stuck"):
            deleting.wait_deleted()
    assert lines == ["endpoint fraud-xgboost deleted"]
