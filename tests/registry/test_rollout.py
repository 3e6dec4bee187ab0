"""Promotion on AWS: the champion's artifacts, fetched and verified from the registry, become a
new SageMaker model and endpoint config, then update_endpoint (botocore's Stubber: moto lacks
update_endpoint)."""

from __future__ import annotations

import pytest
from botocore.stub import ANY, Stubber

from fraud_pipeline.registry import versions
from fraud_pipeline.registry.rollout import update_sagemaker
from fraud_pipeline.registry.store import LocalStore
from fraud_pipeline.registry.versions import set_up_database
from fraud_pipeline.serving.sagemaker_deploy import Deployer
from tests.support.aws import NOT_FOUND, TARGET, deployer, recording_sagemaker
from tests.support.registry import model_version_copy

ENDPOINT = {
    "EndpointName": "fraud-xgboost",
    "EndpointArn": "arn:aws:sagemaker:eu-west-3:123456789012:endpoint/fraud-xgboost",
    "CreationTime": 0,
    "LastModifiedTime": 0,
}


def stub_new_release(stub: Stubber) -> None:
    """The deploy steps up to update_endpoint: a new model and config, the endpoint InService."""
    stub.add_client_error("describe_model", **NOT_FOUND)
    stub.add_response("create_model", {"ModelArn": "arn:aws:sagemaker:::model/m"})
    stub.add_client_error("describe_endpoint_config", **NOT_FOUND)
    stub.add_response(
        "create_endpoint_config", {"EndpointConfigArn": "arn:aws:sagemaker:::endpoint-config/c"}
    )
    stub.add_response(
        "describe_endpoint",
        {**ENDPOINT, "EndpointStatus": "InService", "EndpointConfigName": "old-config"},
    )


def test_promote_updates_the_sagemaker_endpoint(aws, conn, tmp_path):
    _, s3 = aws
    store = LocalStore(tmp_path / "store")
    versions.register(conn, store, model_version_copy(tmp_path / "v2", "xgb-promoted"))
    champion = versions.promote(conn, "xgb-promoted", "alice", "test")

    stubbed, sent = recording_sagemaker()
    with Stubber(stubbed) as stub:
        stub_new_release(stub)
        stub.add_response(
            "update_endpoint",
            {"EndpointArn": ENDPOINT["EndpointArn"]},
            {"EndpointName": "fraud-xgboost", "EndpointConfigName": ANY},
        )
        stub.add_response(
            "describe_endpoint",
            {**ENDPOINT, "EndpointStatus": "InService", "EndpointConfigName": "new"},
        )
        result = update_sagemaker(
            Deployer(stubbed, s3, deployer(aws).spec, TARGET, poll_s=0, echo=lambda line: None),
            versions.fetch_verified(store, champion),
        )
        stub.assert_no_pending_responses()

    calls = dict(sent)
    assert result.action == "updated"
    assert calls["UpdateEndpoint"]["EndpointConfigName"] == result.endpoint_config != "old-config"
    assert calls["CreateModel"]["PrimaryContainer"]["Environment"]["MODEL_VERSION"] == (
        "xgb-promoted"
    )
    assert (
        calls["CreateModel"]["PrimaryContainer"]["Environment"]["MODEL_SHA256"]
        == (champion.sha256["model.tar.gz"])
    )
    key = f"{TARGET.prefix}/xgb-promoted/model.tar.gz"
    assert (
        s3.head_object(Bucket=TARGET.bucket, Key=key)["Metadata"]["sha256"]
        == (champion.sha256["model.tar.gz"])
    )


def test_a_failed_endpoint_update_leaves_the_registry_as_it_was(aws, clean_db, conn, tmp_path):
    """On AWS the switch is the endpoint update: refused, the registry keeps its champion."""
    _, s3 = aws
    set_up_database(clean_db)
    before = versions.champion(conn)
    store = LocalStore(tmp_path / "store")
    versions.register(conn, store, model_version_copy(tmp_path / "v2", "xgb-promoted"))
    stubbed, _ = recording_sagemaker()
    target = Deployer(stubbed, s3, deployer(aws).spec, TARGET, poll_s=0, echo=lambda line: None)

    def deploy(version: versions.ModelVersion) -> str:
        return str(update_sagemaker(target, versions.fetch_verified(store, version)).action)

    with Stubber(stubbed) as stub:
        stub_new_release(stub)
        stub.add_client_error(
            "update_endpoint", service_error_code="ResourceLimitExceeded", service_message="quota"
        )
        with pytest.raises(versions.SwitchError, match="registry is unchanged"):
            versions.promote(conn, "xgb-promoted", "alice", "test", deploy=deploy)
    assert versions.champion(conn) == before
    assert versions.get_version(conn, "xgb-promoted").status == "challenger"
    (failed,) = [e for e in versions.history(conn) if e.event == "switch_failed"]
    assert "quota" in failed.reason
