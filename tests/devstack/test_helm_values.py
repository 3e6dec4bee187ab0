"""infra/helm/values.yaml for the official Airflow chart (KubernetesExecutor), checked offline:
no helm binary and no cluster here. The values are validated against the committed subset of
the chart's values.schema.json, their airflow.cfg keys against Airflow's own options, and their
environment against what the pipeline needs in production (docker-compose.prod.yml, Settings)."""

from __future__ import annotations

import json
import re
import typing
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import SecretStr

from fraud_pipeline.cli import build_parser
from fraud_pipeline.config import REPO_ROOT, Settings, get_settings

HELM = REPO_ROOT / "infra" / "helm"
# What the chart itself turns into these Airflow variables, from the values that name it.
CHART_MANAGED = {
    "AIRFLOW__CORE__FERNET_KEY": "fernetKeySecretName",
    "AIRFLOW__API__SECRET_KEY": "apiSecretKeySecretName",
    "AIRFLOW__API_AUTH__JWT_SECRET": "jwtSecretName",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "data.metadataSecretName",
}
# Local-only Airflow settings of docker-compose.yml that a cluster does otherwise: the chart
# wires the execution API and the executor; the simple auth manager's file is the laptop's.
LOCAL_ONLY = {
    "AIRFLOW__CORE__EXECUTOR",
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS",
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE",
    "AIRFLOW__CELERY__BROKER_URL",
    "AIRFLOW__CELERY__RESULT_BACKEND",
    "AIRFLOW__CELERY__WORKER_CONCURRENCY",
}
COMPONENTS = ("scheduler", "apiServer", "dagProcessor", "triggerer", "workers")


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    found: dict[str, Any] = yaml.safe_load((HELM / "values.yaml").read_text())
    return found


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    found: dict[str, Any] = json.loads((HELM / "values.schema.subset.json").read_text())
    jsonschema.Draft7Validator.check_schema(found)
    return found


def get(values: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        values = values[part]
    return values


def provided(values: dict[str, Any]) -> dict[str, str]:
    """Every environment name the values give the pods, and how: env, secret, chart, config."""
    names = {item["name"]: "env" for item in values["env"]}
    names |= {item["envName"]: "secret" for item in values["secret"]}
    names |= {name: "chart" for name, key in CHART_MANAGED.items() if get(values, key)}
    for section, options in values["config"].items():
        names |= {f"AIRFLOW__{section.upper()}__{key.upper()}": "config" for key in options}
    return names


def needed() -> set[str]:
    """What the Airflow containers get in production: docker-compose.yml's settings, with
    docker-compose.prod.yml's on top, less what only a laptop needs."""
    base = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())["services"]
    prod = yaml.safe_load((REPO_ROOT / "docker-compose.prod.yml").read_text())["services"]
    settings = {name.upper() for name in Settings.model_fields}
    names = {
        name
        for name in {
            *base["airflow-scheduler"]["environment"],
            *prod["airflow-scheduler"]["environment"],
        }
        if name in settings or name.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))
    }
    return names - LOCAL_ONLY


def secret_names() -> set[str]:
    """Names whose values are credentials: SecretStr settings, database URLs, and connections
    the operator supplies (docker-compose.prod.yml requires them with `:?`)."""
    prod = yaml.safe_load((REPO_ROOT / "docker-compose.prod.yml").read_text())["services"]
    names = {
        name.upper()
        for name, field in Settings.model_fields.items()
        if SecretStr in (field.annotation, *typing.get_args(field.annotation))
        or name.endswith("database_url")
    }
    names |= {
        name
        for name, value in prod["airflow-scheduler"]["environment"].items()
        if name.startswith("AIRFLOW_CONN_") and ":?" in str(value)
    }
    return names


def test_values_follow_the_charts_schema(values, schema):
    errors = [e.message for e in jsonschema.Draft7Validator(schema).iter_errors(values)]
    assert errors == []


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"executer": "KubernetesExecutor"}, "Additional properties"),
        ({"executor": "KubernetesExecuter"}, "is not one of"),
        ({"secret": [{"envName": "X", "secretName": "s"}]}, "'secretKey' is a required property"),
        ({"env": [{"name": "SMTP_PORT", "value": 587}]}, "is not of type 'string'"),
    ],
)
def test_the_schema_check_catches_what_helm_would_refuse(values, schema, change, complaint):
    errors = [
        e.message for e in jsonschema.Draft7Validator(schema).iter_errors({**values, **change})
    ]
    assert any(complaint in error for error in errors), errors


def test_kubernetes_executor_with_the_projects_image_and_airflow_version(values):
    assert values["executor"] == "KubernetesExecutor"
    from airflow.providers.cncf.kubernetes.executors.kubernetes_executor import (
        KubernetesExecutor,
    )

    assert KubernetesExecutor.__name__ == values["executor"]
    dockerfile = (REPO_ROOT / "airflow" / "Dockerfile").read_text()
    (version,) = re.findall(r"^FROM apache/airflow:([\d.]+)-python", dockerfile, re.M)
    assert values["airflowVersion"] == version
    assert "apache-airflow-providers-cncf-kubernetes" in dockerfile
    image = values["images"]["airflow"]
    assert image["repository"].endswith("/fraud-pipeline-airflow")
    assert image["tag"] and image["tag"] != "latest"  # a release is a pinned image


def test_dags_are_baked_into_the_image_or_synced_from_their_folder(values):
    git_sync = values["dags"]["gitSync"]
    if git_sync["enabled"]:
        assert git_sync["subPath"] == "airflow/dags"
    else:
        dockerfile = (REPO_ROOT / "airflow" / "Dockerfile").read_text()
        assert "COPY --chown=airflow airflow/dags/ /opt/airflow/dags/" in dockerfile
        assert not values["dags"]["persistence"]["enabled"]


def test_the_metadata_database_is_an_external_postgresql_from_a_secret(values):
    assert values["postgresql"]["enabled"] is False
    assert values["data"]["metadataSecretName"]
    assert "metadataConnection" not in values["data"]  # no host or password in the values
    assert values["redis"]["enabled"] is False  # no broker: no Celery under this executor


def test_every_setting_the_pipeline_needs_in_production_is_given(values):
    missing = needed() - set(provided(values))
    assert missing == set(), f"infra/helm/values.yaml does not set {sorted(missing)}"


def test_credentials_come_from_secrets_never_from_the_values(values):
    how = provided(values)
    for name in secret_names() & needed():
        assert how.get(name) in {"secret", "chart"}, f"{name} must come from a Secret"
    inline = [i["name"] for i in values["env"] if re.search(r"://[^/\s]*:[^/\s]*@", i["value"])]
    assert inline == []  # no scheme://user:password@host in plain values


def test_the_production_profile_accepts_the_pods_environment(values, monkeypatch):
    """Settings, as a task pod builds them: prod refuses a missing secret, so this would fail."""
    for item in values["env"]:
        monkeypatch.setenv(item["name"], item["value"])
    for item in values["secret"]:
        value = f"from-secret-{item['secretKey']}"
        if item["envName"].endswith("DATABASE_URL"):  # a URL, whatever the secret holds
            value = f"postgresql://{value}@db.example.com:5432/fraud_db"
        monkeypatch.setenv(item["envName"], value)
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@db.example.com:5432/fraud_db")
    get_settings.cache_clear()
    try:
        settings = Settings(_env_file=None)  # type: ignore[call-arg]
    finally:
        get_settings.cache_clear()
    assert settings.fraud_profile == "prod"
    assert settings.sagemaker_endpoint_url is None  # the real endpoint
    assert settings.card_token_key.get_secret_value() == "from-secret-card-token-key"


def test_airflow_cfg_keys_are_real_airflow_options(values):
    from airflow.configuration import conf

    described = conf.configuration_description
    for section, options in values["config"].items():
        for key in options:
            assert key in described.get(section, {}).get("options", {}), f"[{section}] {key}?"


def test_the_migration_job_runs_the_pipelines_migrations_then_airflows(values):
    job = values["migrateDatabaseJob"]
    assert job["enabled"] and job["args"][:2] == ["bash", "-c"]
    steps = [step.split() for step in job["args"][2].split("&&")]
    for words in steps[:-1]:
        assert words[0] == "fraud-pipeline"
        build_parser().parse_args(words[1:])
    assert steps[0][1:3] == ["db", "migrate"]
    assert steps[-1] == ["exec", "airflow", "db", "migrate"]


def test_every_component_and_task_pod_has_requests_and_a_memory_limit(values):
    for component in COMPONENTS:
        resources = values[component]["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]), component
        assert "memory" in resources["limits"], component
    role = "arn:aws:iam::123456789012:role/fraud-airflow-tasks"
    assert values["workers"]["serviceAccount"]["annotations"]["eks.amazonaws.com/role-arn"] == role
