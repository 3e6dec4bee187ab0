"""The CeleryExecutor profile of docker-compose.yml, checked without a Docker engine: the file
is parsed, its `${VAR:-default}` references resolved as Compose would, every Airflow option it
sets is a real one (core or provider), and the worker's start guard really runs in bash."""

from __future__ import annotations

import os
import re
import stat
import subprocess
from typing import Any

import pytest
import yaml

from fraud_pipeline.config import REPO_ROOT

AIRFLOW_SERVICES = (
    "airflow-api-server",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
)
_REFERENCE = re.compile(r"\$\{(\w+)(?::([-?])([^}]*))?\}")


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO_ROOT / name).read_text())
    return data


def resolve(value: str, env: dict[str, str]) -> str:
    """Compose's interpolation of ${NAME}, ${NAME:-default} and ${NAME:?error}."""

    def one(match: re.Match[str]) -> str:
        name, kind, rest = match.groups()
        if env.get(name):
            return env[name]
        if kind == "?":
            raise LookupError(f"{name}: {rest}")
        return rest if kind == "-" else ""

    return _REFERENCE.sub(one, value)


@pytest.fixture(scope="module")
def compose() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = load("docker-compose.yml")["services"]
    return found


def test_the_celery_profile_holds_the_broker_and_the_workers_and_flower_is_optional(compose):
    profiled = {name: s["profiles"] for name, s in compose.items() if s.get("profiles")}
    assert profiled == {"redis": ["celery"], "airflow-worker": ["celery"], "flower": ["flower"]}


def test_workers_are_scalable_copies_of_the_airflow_image(compose):
    worker, scheduler = compose["airflow-worker"], compose["airflow-scheduler"]
    assert worker["image"] == scheduler["image"] and worker["build"] == scheduler["build"]
    assert worker["volumes"] == scheduler["volumes"]  # the same DAGs and logs
    # `--scale airflow-worker=N` needs no fixed host port and no fixed container name
    assert "ports" not in worker and "container_name" not in worker
    assert worker["command"][-1].endswith("exec airflow celery worker")
    assert "inspect ping" in worker["healthcheck"]["test"][1]
    assert worker["restart"] == "unless-stopped"


def test_workers_start_after_the_broker_the_metadata_and_the_execution_api(compose):
    needs = compose["airflow-worker"]["depends_on"]
    assert needs["redis"]["condition"] == "service_healthy"
    assert needs["postgres"]["condition"] == "service_healthy"
    assert needs["airflow-init"]["condition"] == "service_completed_successfully"
    assert needs["airflow-api-server"]["condition"] == "service_healthy"
    assert compose["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert "ports" not in compose["redis"]  # only the containers reach the broker
    assert compose["flower"]["depends_on"]["redis"]["condition"] == "service_healthy"


def test_one_variable_switches_every_airflow_service_to_celery(compose):
    for env, executor in (
        ({}, "LocalExecutor"),
        ({"AIRFLOW_EXECUTOR": "CeleryExecutor"}, "CeleryExecutor"),
    ):
        for name in AIRFLOW_SERVICES:
            setting = compose[name]["environment"]["AIRFLOW__CORE__EXECUTOR"]
            assert resolve(setting, env) == executor, name


def test_broker_is_the_redis_service_and_results_go_to_the_metadata_database(compose):
    env = compose["airflow-scheduler"]["environment"]
    broker = resolve(env["AIRFLOW__CELERY__BROKER_URL"], {})
    assert broker == "redis://redis:6379/0"
    backend = resolve(env["AIRFLOW__CELERY__RESULT_BACKEND"], {"POSTGRES_PASSWORD": "s3cret"})
    metadata = resolve(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], {"POSTGRES_PASSWORD": "s3cret"})
    assert backend == "db+" + metadata.replace("postgresql+psycopg2://", "postgresql://")
    assert int(resolve(env["AIRFLOW__CELERY__WORKER_CONCURRENCY"], {})) >= 1


def test_every_airflow_option_set_is_a_real_one():
    """AIRFLOW__SECTION__KEY names are checked against Airflow's own description of its
    configuration, the Celery provider's included: a typo would be silently ignored."""
    from airflow.configuration import conf

    described = conf.configuration_description
    for file in ("docker-compose.yml", "docker-compose.prod.yml"):
        for name, service in load(file)["services"].items():
            for variable in service.get("environment", {}):
                if not variable.startswith("AIRFLOW__"):
                    continue
                section, key = variable.removeprefix("AIRFLOW__").lower().split("__", 1)
                assert key in described.get(section, {}).get("options", {}), (
                    f"{file}: {name} sets {variable}, which Airflow does not know"
                )


def test_the_celery_provider_is_pinned_installed_and_importable():
    lock = (REPO_ROOT / "requirements.lock").read_text()
    assert re.search(r"^apache-airflow-providers-celery==", lock, re.M)
    assert "apache-airflow-providers-celery" in (REPO_ROOT / "airflow/Dockerfile").read_text()
    from airflow.providers.celery.executors.celery_executor import CeleryExecutor

    assert CeleryExecutor.__name__ == "CeleryExecutor"


def test_production_gives_the_workers_and_flower_the_production_settings(compose):
    prod = load("docker-compose.prod.yml")["services"]
    scheduler = prod["airflow-scheduler"]["environment"]
    assert prod["airflow-worker"]["environment"] == scheduler
    assert prod["flower"]["environment"]["AIRFLOW__CELERY__FLOWER_BASIC_AUTH"].startswith("${")


@pytest.mark.parametrize(
    ("executor", "code", "said"),
    [("CeleryExecutor", 0, "celery worker"), ("LocalExecutor", 78, "set AIRFLOW_EXECUTOR")],
)
def test_the_worker_guard_runs_the_worker_only_under_celery(
    compose, tmp_path, executor, code, said
):
    """The worker's real bash command, `$$` unescaped as Compose does, `airflow` a stand-in."""
    fake = tmp_path / "airflow"
    fake.write_text('#!/bin/sh\necho "ran airflow $*"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    command = compose["airflow-worker"]["command"]
    assert command[:2] == ["bash", "-c"]
    env = {**os.environ, "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"}
    env["AIRFLOW__CORE__EXECUTOR"] = executor
    done = subprocess.run(
        ["bash", "-c", command[2].replace("$$", "$")],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == code
    assert said in done.stdout + done.stderr
