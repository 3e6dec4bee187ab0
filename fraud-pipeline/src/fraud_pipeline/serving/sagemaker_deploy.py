"""Deploy the model to a SageMaker endpoint, update it without downtime, and tear it down.

`deploy` uploads model.tar.gz to S3 (once per model version), creates the SageMaker model (the
ECR image of infra/sagemaker + the artifact) and an endpoint config, both named after what they
contain, then creates the endpoint or points it at the new config (SageMaker keeps serving the old
config until the new one is InService) and waits for InService. Running it twice changes nothing.
`teardown` deletes the endpoint and every config of it (the cost), and optionally the models.
A real-time endpoint's variant is registered with Application Auto Scaling (target tracking on
invocations per instance) once InService, deregistered before an update (AWS refuses to change
a scaled variant's instances) and at teardown; serverless endpoints scale themselves.

The control plane is plain boto3: the `sagemaker` SDK's resource classes build their own clients
and validate responses strictly (they refuse moto's), which adds nothing over these few calls;
the SDK serves to resolve AWS's built-in XGBoost image (SAGEMAKER_IMAGE_URI=builtin-xgboost).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from fraud_pipeline.config import Settings, get_settings
from fraud_pipeline.model.artifacts import SAGEMAKER_FILE, ArtifactError, read_metadata, verify

VARIANT = "AllTraffic"
OWNER_TAG = "fraud-pipeline:endpoint"  # marks the models and configs `teardown` may delete
BUILTIN_XGBOOST = "builtin-xgboost"
BUILTIN_XGBOOST_VERSION = "3.0-5"
_NAME_MAX = 63  # SageMaker resource names: [a-zA-Z0-9](-*[a-zA-Z0-9])*, at most 63 characters
_TRANSITIONAL = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting"})
SCALING_NAMESPACE = "sagemaker"
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
SCALING_METRIC = "SageMakerVariantInvocationsPerInstance"


class DeployError(RuntimeError):
    """The deployment cannot go on; the message says what to do."""


def resource_name(*parts: str) -> str:
    """A valid SageMaker name from `parts`; too long = shortened with a digest, still unique."""
    name = re.sub(r"[^A-Za-z0-9]+", "-", "-".join(parts)).strip("-")
    if len(name) <= _NAME_MAX:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: _NAME_MAX - 9].rstrip('-')}-{digest}"


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:8]


@dataclass(frozen=True)
class Release:
    """A verified model version, ready to upload."""

    version: str
    tarball: Path
    sha256: str

    @classmethod
    def from_artifacts(cls, artifacts_dir: Path) -> Release:
        metadata = read_metadata(artifacts_dir)
        verify(artifacts_dir, metadata)  # never ship an artifact that does not match its metadata
        return cls(
            str(metadata["model_version"]),
            artifacts_dir / SAGEMAKER_FILE,
            metadata["sha256"][SAGEMAKER_FILE],
        )


@dataclass(frozen=True)
class Autoscaling:
    """How many instances a real-time variant may run, and the load per instance it holds.

    No defaults here: the values are the settings' (SAGEMAKER_AUTOSCALING_*), via `from_settings`.
    """

    min_instances: int
    max_instances: int
    target_invocations: float  # per instance per minute (SageMaker's metric)
    scale_in_cooldown_s: int
    scale_out_cooldown_s: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Autoscaling:
        return cls(
            min_instances=settings.sagemaker_autoscaling_min_instances,
            max_instances=settings.sagemaker_autoscaling_max_instances,
            target_invocations=settings.sagemaker_autoscaling_target_invocations,
            scale_in_cooldown_s=settings.sagemaker_autoscaling_scale_in_cooldown_s,
            scale_out_cooldown_s=settings.sagemaker_autoscaling_scale_out_cooldown_s,
        )

    def policy(self) -> dict[str, Any]:
        """The TargetTrackingScalingPolicyConfiguration of put_scaling_policy."""
        return {
            "TargetValue": self.target_invocations,
            "PredefinedMetricSpecification": {"PredefinedMetricType": SCALING_METRIC},
            "ScaleInCooldown": self.scale_in_cooldown_s,
            "ScaleOutCooldown": self.scale_out_cooldown_s,
        }


@dataclass(frozen=True)
class EndpointSpec:
    """How the endpoint runs: serverless (pay per request) or real-time instances."""

    name: str
    autoscaling: Autoscaling  # used by a real-time variant only
    kind: Literal["serverless", "realtime"] = "serverless"
    memory_mb: int = 2048
    max_concurrency: int = 5
    instance_type: str = "ml.c5.large"
    instance_count: int = 1

    @classmethod
    def from_settings(cls, settings: Settings) -> EndpointSpec:
        return cls(
            name=settings.sagemaker_endpoint_name,
            autoscaling=Autoscaling.from_settings(settings),
            kind=settings.sagemaker_endpoint_type,
            memory_mb=settings.sagemaker_serverless_memory_mb,
            max_concurrency=settings.sagemaker_serverless_max_concurrency,
            instance_type=settings.sagemaker_instance_type,
            instance_count=settings.sagemaker_instance_count,
        )

    @property
    def scaling_resource_id(self) -> str:
        """The variant as Application Auto Scaling names it."""
        return f"endpoint/{self.name}/variant/{VARIANT}"

    @property
    def scaling_policy_name(self) -> str:
        return f"{self.name}-invocations-per-instance"

    def production_variant(self, model_name: str) -> dict[str, Any]:
        variant: dict[str, Any] = {"VariantName": VARIANT, "ModelName": model_name}
        if self.kind == "serverless":
            variant["ServerlessConfig"] = {
                "MemorySizeInMB": self.memory_mb,
                "MaxConcurrency": self.max_concurrency,
            }
        else:
            variant |= {
                "InstanceType": self.instance_type,
                "InitialInstanceCount": self.instance_count,
                "InitialVariantWeight": 1.0,
            }
        return variant


@dataclass(frozen=True)
class Target:
    """Where the release goes: S3 location, execution role and inference image."""

    bucket: str
    prefix: str
    role_arn: str
    image_uri: str

    @classmethod
    def from_settings(cls, settings: Settings) -> Target:
        missing = [
            env
            for env, value in (
                ("SAGEMAKER_BUCKET", settings.sagemaker_bucket),
                ("SAGEMAKER_ROLE_ARN", settings.sagemaker_role_arn),
                ("SAGEMAKER_IMAGE_URI", settings.sagemaker_image_uri),
            )
            if not value
        ]
        if missing:
            raise DeployError(
                f"deploying needs these environment variables (see .env.example): {missing}"
            )
        image = str(settings.sagemaker_image_uri)
        if image == BUILTIN_XGBOOST:
            image = builtin_xgboost_image(settings.aws_region)
        return cls(
            str(settings.sagemaker_bucket),
            settings.sagemaker_artifact_prefix.strip("/"),
            str(settings.sagemaker_role_arn),
            image,
        )


def builtin_xgboost_image(region: str) -> str:
    """AWS's own XGBoost inference image (text/csv only, no model version header)."""
    from sagemaker.core import image_uris  # slow import: only when asked for

    return str(image_uris.retrieve("xgboost", region=region, version=BUILTIN_XGBOOST_VERSION))


@dataclass(frozen=True)
class DeployResult:
    action: Literal["created", "updated", "unchanged"]
    endpoint: str
    endpoint_config: str
    model: str
    model_data_url: str
    autoscaling: dict[str, Any] | None = None  # the scalable target set, None if none


def _not_found(error: Exception) -> bool:
    from botocore.exceptions import ClientError  # heavy; only when AWS is used

    if not isinstance(error, ClientError):
        return False
    code = error.response.get("Error", {}).get("Code", "")
    message = error.response.get("Error", {}).get("Message", "")
    return code in {"404", "NoSuchKey", "NotFound"} or (
        code in {"ValidationException", "ValidationError"} and "Could not find" in message
    )


def _describe(call: Callable[..., dict[str, Any]], **kwargs: Any) -> dict[str, Any] | None:
    """A describe/head call's answer, or None when the resource does not exist."""
    try:
        return call(**kwargs)
    except Exception as error:
        if _not_found(error):
            return None
        raise


@dataclass
class Deployer:
    """The deploy steps against one endpoint, on injected boto3 `sagemaker` and `s3` clients
    (and `application-autoscaling`: by default one in the `sagemaker` client's region)."""

    sagemaker: Any
    s3: Any
    spec: EndpointSpec
    target: Target | None = None
    poll_s: float = 15.0
    timeout_s: float = 1800.0
    echo: Callable[[str], None] = field(default=lambda line: print(line, flush=True))
    autoscaling: Any = None

    def _scaling(self) -> Any:
        if self.autoscaling is None:
            import boto3  # heavy; only when AWS is used

            region = self.sagemaker.meta.region_name
            self.autoscaling = boto3.client("application-autoscaling", region_name=region)
        return self.autoscaling

    def _target(self) -> Target:
        if self.target is None:
            raise DeployError("this step needs a Target (bucket, role, image)")
        return self.target

    def _tags(self, release: Release) -> list[dict[str, str]]:
        return [
            {"Key": OWNER_TAG, "Value": self.spec.name},
            {"Key": "fraud-pipeline:model-version", "Value": release.version},
        ]

    # -- steps --------------------------------------------------------------------------------
    def upload(self, release: Release) -> str:
        """s3:// URL of the release's model.tar.gz; uploaded once, a version is never replaced."""
        target = self._target()
        key = f"{target.prefix}/{release.version}/{SAGEMAKER_FILE}"
        url = f"s3://{target.bucket}/{key}"
        head = _describe(self.s3.head_object, Bucket=target.bucket, Key=key)
        if head is not None:
            stored = head.get("Metadata", {}).get("sha256")
            if stored != release.sha256:
                raise DeployError(
                    f"{url} already holds another artifact (sha256 {stored}) for model version "
                    f"{release.version}: a version is immutable, retrain to get a new one"
                )
            self.echo(f"artifact {url} already uploaded")
            return url
        self.echo(f"uploading {release.tarball} to {url}")
        self.s3.upload_file(
            str(release.tarball),
            target.bucket,
            key,
            ExtraArgs={"Metadata": {"sha256": release.sha256}},
        )
        return url

    def ensure_model(self, release: Release, model_data_url: str) -> str:
        """The SageMaker model for this image + artifact (named after both)."""
        target = self._target()
        container = {
            "Image": target.image_uri,
            "ModelDataUrl": model_data_url,
            "Environment": {"MODEL_VERSION": release.version, "MODEL_SHA256": release.sha256},
        }
        return self._create_once(
            "model",
            ModelName=resource_name(self.spec.name, release.version, _digest(container)),
            PrimaryContainer=container,
            ExecutionRoleArn=target.role_arn,
            Tags=self._tags(release),
        )

    def ensure_endpoint_config(self, release: Release, model_name: str) -> str:
        """The endpoint config serving `model_name` as the spec says (named after both)."""
        variant = self.spec.production_variant(model_name)
        return self._create_once(
            "endpoint_config",
            EndpointConfigName=resource_name(self.spec.name, release.version, _digest(variant)),
            ProductionVariants=[variant],
            Tags=self._tags(release),
        )

    def _create_once(self, resource: str, **params: Any) -> str:
        """Create `resource` (model, endpoint_config) unless its name exists; the name.

        Names are derived from the content, so an existing name holds exactly this content.
        """
        key = next(iter(params))  # ModelName / EndpointConfigName
        name = str(params[key])
        label = resource.replace("_", " ")
        if _describe(getattr(self.sagemaker, f"describe_{resource}"), **{key: name}) is not None:
            self.echo(f"{label} {name} exists")
        else:
            self.echo(f"creating {label} {name}")
            getattr(self.sagemaker, f"create_{resource}")(**params)
        return name

    def describe_endpoint(self) -> dict[str, Any] | None:
        return _describe(self.sagemaker.describe_endpoint, EndpointName=self.spec.name)

    def wait_in_service(self) -> dict[str, Any]:
        """Poll until InService; DeployError on Failed, on disappearance or after timeout_s."""
        started, last, shown = time.monotonic(), "", 0.0
        while True:
            endpoint = self.describe_endpoint()
            if endpoint is None:
                raise DeployError(f"endpoint {self.spec.name} disappeared while waiting for it")
            status = endpoint["EndpointStatus"]
            elapsed = time.monotonic() - started
            if status != last or elapsed - shown >= 60:  # a line per change, and every minute
                self.echo(f"endpoint {self.spec.name}: {status} ({elapsed:.0f} s)")
                last, shown = status, elapsed
            if status == "InService":
                return endpoint
            if status not in _TRANSITIONAL:
                reason = endpoint.get("FailureReason", "no reason given")
                raise DeployError(
                    f"endpoint {self.spec.name} is {status}: {reason}. "
                    "Fix the cause, then `fraud-pipeline sagemaker teardown` and deploy again"
                )
            if elapsed > self.timeout_s:
                raise DeployError(
                    f"endpoint {self.spec.name} still {status} after {self.timeout_s:.0f} s"
                )
            time.sleep(self.poll_s)

    def wait_deleted(self) -> None:
        """Until the endpoint is gone (boto3's `endpoint_deleted` waiter: it stops the cost only
        then); DeployError if its deletion failed or outlasts timeout_s."""
        from botocore.exceptions import WaiterError  # heavy; only when AWS is used

        attempts = max(1, int(self.timeout_s / self.poll_s)) if self.poll_s else 60
        try:
            self.sagemaker.get_waiter("endpoint_deleted").wait(
                EndpointName=self.spec.name,
                WaiterConfig={"Delay": self.poll_s, "MaxAttempts": attempts},
            )
        except WaiterError as error:
            last = error.last_response or {}
            reason = last.get("FailureReason") or error.kwargs.get("reason") or str(error)
            raise DeployError(
                f"endpoint {self.spec.name} was not deleted: {last.get('EndpointStatus', '?')}: "
                f"{reason}"
            ) from error
        self.echo(f"endpoint {self.spec.name} deleted")

    def deploy(
        self, release: Release, *, must_exist: bool = False, wait: bool = True
    ) -> DeployResult:
        """Create the endpoint, or move it to this release without downtime; idempotent."""
        model_data_url = self.upload(release)
        model = self.ensure_model(release, model_data_url)
        config = self.ensure_endpoint_config(release, model)
        endpoint = self.describe_endpoint()
        if endpoint is not None and endpoint["EndpointStatus"] in _TRANSITIONAL:
            self.echo(f"endpoint {self.spec.name} is {endpoint['EndpointStatus']}: waiting first")
            endpoint = self.wait_in_service()
        action: Literal["created", "updated", "unchanged"]
        if endpoint is None:
            if must_exist:
                raise DeployError(
                    f"endpoint {self.spec.name} does not exist: `fraud-pipeline sagemaker deploy`"
                )
            self.echo(f"creating endpoint {self.spec.name}")
            self.sagemaker.create_endpoint(
                EndpointName=self.spec.name, EndpointConfigName=config, Tags=self._tags(release)
            )
            action = "created"
        elif endpoint["EndpointStatus"] != "InService":
            raise DeployError(
                f"endpoint {self.spec.name} is {endpoint['EndpointStatus']}: "
                f"{endpoint.get('FailureReason', '')} (`fraud-pipeline sagemaker teardown` first)"
            )
        elif endpoint["EndpointConfigName"] == config:
            self.echo(f"endpoint {self.spec.name} already serves {config}")
            action = "unchanged"
        else:
            self.echo(
                f"updating endpoint {self.spec.name}: {endpoint['EndpointConfigName']} -> {config}"
            )
            self.remove_autoscaling()  # a scaled variant's instances cannot be changed
            self.sagemaker.update_endpoint(EndpointName=self.spec.name, EndpointConfigName=config)
            action = "updated"
        if wait and action != "unchanged":
            self.wait_in_service()
        scaling = None
        if wait or action == "unchanged":  # InService: the variant exists as configured
            scaling = self.sync_autoscaling()
        elif self.spec.kind == "realtime":
            self.echo("autoscaling is set once the endpoint is InService: deploy again then")
        return DeployResult(action, self.spec.name, config, model, model_data_url, scaling)

    # -- autoscaling (real-time endpoints) --------------------------------------------------------
    def _scaling_target(self) -> dict[str, Any] | None:
        found = self._scaling().describe_scalable_targets(
            ServiceNamespace=SCALING_NAMESPACE,
            ResourceIds=[self.spec.scaling_resource_id],
            ScalableDimension=SCALABLE_DIMENSION,
        )["ScalableTargets"]
        return found[0] if found else None

    def sync_autoscaling(self) -> dict[str, Any] | None:
        """Real-time: register the variant and put its target tracking policy (both upserts, so
        a re-deploy changes nothing or applies new settings); serverless: none may remain."""
        if self.spec.kind != "realtime":
            self.remove_autoscaling()
            return None
        scaling, resource = self.spec.autoscaling, self.spec.scaling_resource_id
        wanted = {
            "min_instances": scaling.min_instances,
            "max_instances": scaling.max_instances,
            "target_invocations": scaling.target_invocations,
        }
        self.echo(
            f"autoscaling {resource}: {scaling.min_instances}-{scaling.max_instances} instances, "
            f"{scaling.target_invocations:g} invocations per instance per minute"
        )
        self._scaling().register_scalable_target(
            ServiceNamespace=SCALING_NAMESPACE,
            ResourceId=resource,
            ScalableDimension=SCALABLE_DIMENSION,
            MinCapacity=scaling.min_instances,
            MaxCapacity=scaling.max_instances,
        )
        self._scaling().put_scaling_policy(
            PolicyName=self.spec.scaling_policy_name,
            ServiceNamespace=SCALING_NAMESPACE,
            ResourceId=resource,
            ScalableDimension=SCALABLE_DIMENSION,
            PolicyType="TargetTrackingScaling",
            TargetTrackingScalingPolicyConfiguration=scaling.policy(),
        )
        return wanted

    def remove_autoscaling(self) -> list[str]:
        """Delete the variant's scaling policies and deregister it (if registered); what went."""
        if self._scaling_target() is None:
            return []
        resource, removed = self.spec.scaling_resource_id, []
        policies = self._scaling().describe_scaling_policies(
            ServiceNamespace=SCALING_NAMESPACE,
            ResourceId=resource,
            ScalableDimension=SCALABLE_DIMENSION,
        )["ScalingPolicies"]
        for policy in policies:
            self.echo(f"deleting scaling policy {policy['PolicyName']}")
            self._scaling().delete_scaling_policy(
                PolicyName=policy["PolicyName"],
                ServiceNamespace=SCALING_NAMESPACE,
                ResourceId=resource,
                ScalableDimension=SCALABLE_DIMENSION,
            )
            removed.append(f"scaling-policy/{policy['PolicyName']}")
        self.echo(f"deregistering scalable target {resource}")
        self._scaling().deregister_scalable_target(
            ServiceNamespace=SCALING_NAMESPACE,
            ResourceId=resource,
            ScalableDimension=SCALABLE_DIMENSION,
        )
        removed.append(f"scalable-target/{resource}")
        return removed

    def status(self) -> dict[str, Any]:
        """What runs behind the endpoint: status, config, and per variant its model and version."""
        endpoint = self.describe_endpoint()
        if endpoint is None:
            return {"endpoint": self.spec.name, "status": "absent"}
        config = self.sagemaker.describe_endpoint_config(
            EndpointConfigName=endpoint["EndpointConfigName"]
        )
        variants = []
        for variant in config["ProductionVariants"]:
            model = _describe(self.sagemaker.describe_model, ModelName=variant["ModelName"]) or {}
            environment = model.get("PrimaryContainer", {}).get("Environment", {})
            variants.append(
                {
                    "variant": variant["VariantName"],
                    "model": variant["ModelName"],
                    "model_version": environment.get("MODEL_VERSION"),
                    "serverless": variant.get("ServerlessConfig"),
                    "instance_type": variant.get("InstanceType"),
                    "instance_count": variant.get("InitialInstanceCount"),
                }
            )
        target = self._scaling_target()
        return {
            "endpoint": self.spec.name,
            "status": endpoint["EndpointStatus"],
            "endpoint_config": endpoint["EndpointConfigName"],
            "failure_reason": endpoint.get("FailureReason"),
            "variants": variants,
            "autoscaling": target
            and {"min_instances": target["MinCapacity"], "max_instances": target["MaxCapacity"]},
        }

    def _owned(self, pages: Iterator[dict[str, Any]], key: str, name: str, arn: str) -> list[str]:
        """Names of listed resources tagged as this endpoint's."""
        owned = []
        for page in pages:
            for item in page[key]:
                tags = self.sagemaker.list_tags(ResourceArn=item[arn]).get("Tags", [])
                if {"Key": OWNER_TAG, "Value": self.spec.name} in tags:
                    owned.append(item[name])
        return owned

    def teardown(self, *, delete_models: bool = False) -> list[str]:
        """Delete the endpoint and all its configs (and models); what was deleted, in order."""
        deleted = self.remove_autoscaling()  # before the endpoint: it names the variant
        if self.describe_endpoint() is not None:
            self.echo(f"deleting endpoint {self.spec.name}")
            self.sagemaker.delete_endpoint(EndpointName=self.spec.name)
            self.wait_deleted()
            deleted.append(f"endpoint/{self.spec.name}")
        paginate = self.sagemaker.get_paginator("list_endpoint_configs").paginate
        configs = paginate(NameContains=self.spec.name)
        for name in self._owned(
            configs, "EndpointConfigs", "EndpointConfigName", "EndpointConfigArn"
        ):
            self.echo(f"deleting endpoint config {name}")
            self.sagemaker.delete_endpoint_config(EndpointConfigName=name)
            deleted.append(f"endpoint-config/{name}")
        if delete_models:
            models = self.sagemaker.get_paginator("list_models").paginate(
                NameContains=self.spec.name
            )
            for name in self._owned(models, "Models", "ModelName", "ModelArn"):
                self.echo(f"deleting model {name}")
                self.sagemaker.delete_model(ModelName=name)
                deleted.append(f"model/{name}")
        if not deleted:
            self.echo(f"nothing to tear down for endpoint {self.spec.name}")
        return deleted


def control_plane_clients(settings: Settings) -> tuple[Any, Any, Any]:
    """boto3 `sagemaker`, `s3` and `application-autoscaling` clients in the configured region
    (credentials: boto3's chain)."""
    import boto3  # heavy; only when AWS is used

    session = boto3.Session(region_name=settings.aws_region)
    return (
        session.client("sagemaker"),
        session.client("s3"),
        session.client("application-autoscaling"),
    )


def deployer_from_settings(
    settings: Settings, *, endpoint_type: str | None = None, with_target: bool = True
) -> Deployer:
    if endpoint_type:
        settings = settings.model_copy(update={"sagemaker_endpoint_type": endpoint_type})
    sagemaker, s3, autoscaling = control_plane_clients(settings)
    target = Target.from_settings(settings) if with_target else None
    spec = EndpointSpec.from_settings(settings)
    return Deployer(sagemaker, s3, spec, target, autoscaling=autoscaling)


def main(
    command: Literal["deploy", "update", "status", "teardown"],
    *,
    artifacts_dir: Path | None = None,
    endpoint_type: Literal["serverless", "realtime"] | None = None,
    wait: bool = True,
    delete_models: bool = False,
) -> int:
    """`fraud-pipeline sagemaker deploy|update|status|teardown`; the exit code.

    `artifacts_dir` (default ARTIFACTS_DIR), `endpoint_type` and `wait` concern deploy/update,
    `delete_models` teardown.
    """
    # heavy; only when AWS is used
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    settings = get_settings()
    try:
        deployer = deployer_from_settings(
            settings,
            endpoint_type=endpoint_type,
            with_target=command in {"deploy", "update"},
        )
        if command in {"deploy", "update"}:
            release = Release.from_artifacts(Path(artifacts_dir or settings.artifacts_dir))
            result = deployer.deploy(release, must_exist=command == "update", wait=wait)
            print(json.dumps(result.__dict__, indent=2))
        elif command == "status":
            print(json.dumps(deployer.status(), indent=2, default=str))
        else:
            deployer.teardown(delete_models=delete_models)
    except NoCredentialsError:
        print(f"sagemaker {command} failed: no AWS credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID...)")
        return 1
    except (DeployError, ArtifactError, BotoCoreError, ClientError) as error:
        print(f"sagemaker {command} failed: {error}", flush=True)
        return 1
    return 0
