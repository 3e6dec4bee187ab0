"""docker-compose.yml is checked without a Docker engine: structure, files, names, and `make run`.

No Docker here, so the file is parsed and every reference is followed: build contexts and
Dockerfiles exist, commands name real executables and subcommands, ports are unique, every
long-running service has a healthcheck, depends_on conditions are valid, every environment name
is a Settings field or a known Airflow/AWS/Postgres/Mailpit one, and the services are exactly
those `make run` starts.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from fraud_devstack import cli as dev_cli
from fraud_devstack.stack.local_stack import COMPOSE_SERVICES
from fraud_pipeline.cli import build_parser
from fraud_pipeline.config import REPO_ROOT, Settings

KNOWN_PREFIXES = ("AIRFLOW__", "AIRFLOW_CONN_", "AWS_", "POSTGRES_", "MP_")
KNOWN_NAMES = {"DUMB_INIT_SETSID"}  # the official Airflow image's entrypoint reads it
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
AIRFLOW_SUBCOMMANDS = {"api-server", "scheduler", "dag-processor", "triggerer", "db", "celery"}


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO_ROOT / name).read_text())
    return data


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load("docker-compose.yml")


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def test_same_services_as_make_run(compose):
    # plus a triggerer for deferrable tasks: make run has none (no task of ours defers);
    # the scale-out services (tests/devstack/test_compose_celery.py) are behind profiles
    default = {name for name, s in services(compose).items() if not s.get("profiles")}
    assert default == {*COMPOSE_SERVICES, "airflow-triggerer"}


def test_every_build_context_and_dockerfile_exists(compose):
    built = {name: s["build"] for name, s in services(compose).items() if "build" in s}
    assert built, "no service is built from this repository"
    for name, build in built.items():
        context = REPO_ROOT / build["context"]
        assert context.is_dir(), f"{name}: no build context {context}"
        dockerfile = context / build.get("dockerfile", "Dockerfile")
        assert dockerfile.is_file(), f"{name}: no Dockerfile {dockerfile}"
        for line in dockerfile.read_text().splitlines():  # every COPY source is in the context
            match = re.match(r"COPY\s+(?:--\S+\s+)*(\S+)\s+\S+$", line.strip())
            if match:
                assert (context / match.group(1)).exists(), f"{dockerfile}: missing {line}"


def test_commands_name_real_executables(compose):
    cli_parser, dev_parser = build_parser(), dev_cli.build_parser()
    for name, service in services(compose).items():
        command = service.get("command")
        if not command:
            assert "image" in service and "build" not in service, f"{name}: no command"
            continue
        if command[0] == "redis-server":  # the stock Redis image's own program
            assert service["image"].startswith("redis:") and "build" not in service, name
        elif command[0] == "fraud-pipeline":
            cli_parser.parse_args(command[1:])  # exits (SystemExit) on an unknown subcommand
        elif command[0] == "fraud-dev":
            assert service["image"] == "fraud-pipeline-app:latest", f"{name}: dev code elsewhere"
            dev_parser.parse_args(command[1:])
        elif command[0] == "streamlit":
            assert (REPO_ROOT / command[2]).is_file(), f"{name}: no app {command[2]}"
        elif command[0] == "bash":
            for part in command[2].split("&&"):
                words = part.split()
                if words[0] == "exec":  # a guard first (test ... || exit), then the command
                    words = words[1:]
                if words[0] == "fraud-pipeline":
                    cli_parser.parse_args(words[1:])
                elif words[0] == "test":
                    assert "exit" in part, f"{name}: a test that stops nothing: {part}"
                else:
                    assert words[0] == "airflow" and words[1] in AIRFLOW_SUBCOMMANDS, part
        else:  # the official Airflow image runs `airflow <command>`
            assert service["build"]["dockerfile"] == "airflow/Dockerfile", name
            assert command[0] in AIRFLOW_SUBCOMMANDS, f"{name}: airflow {command[0]}?"


def test_host_ports_are_unique(compose):
    published = [
        str(port).split(":")[0] for s in services(compose).values() for port in s.get("ports", [])
    ]
    assert published and len(published) == len(set(published)), published


def test_long_running_services_have_healthchecks(compose):
    for name, service in services(compose).items():
        if service.get("restart") == "no":
            continue  # one-shot jobs end; they have no health
        assert service.get("healthcheck", {}).get("test"), f"{name}: no healthcheck"


def test_depends_on_conditions_are_valid(compose):
    everything = services(compose)
    for name, service in everything.items():
        for target, spec in service.get("depends_on", {}).items():
            assert target in everything, f"{name} depends on unknown {target}"
            assert spec["condition"] in CONDITIONS, f"{name}: {spec}"
            if spec["condition"] == "service_healthy":
                assert "healthcheck" in everything[target], f"{target} has no healthcheck"
            if spec["condition"] == "service_completed_successfully":
                assert everything[target].get("restart") == "no", f"{target} is not one-shot"


def test_environment_names_are_settings_or_known_variables(compose):
    settings = {name.upper() for name in Settings.model_fields}
    for file in ("docker-compose.yml", "docker-compose.prod.yml"):
        for name, service in load(file)["services"].items():
            for variable in service.get("environment", {}):
                assert (
                    variable in settings
                    or variable in KNOWN_NAMES
                    or variable.startswith(KNOWN_PREFIXES)
                ), f"{file}: {name} sets {variable}, which nothing reads"


def test_env_file_is_the_repository_dotenv(compose):
    for name, service in services(compose).items():
        if "build" in service:
            assert service["env_file"] == [{"path": ".env", "required": False}], name


def test_prod_override_uses_the_same_images_and_drops_the_stand_ins(compose):
    prod = load("docker-compose.prod.yml")["services"]
    assert set(prod) <= set(services(compose))
    for name, override in prod.items():
        assert "image" not in override and "build" not in override, f"{name}: same images"
    assert prod["sagemaker-local"]["profiles"] and prod["mailpit"]["profiles"]
    assert prod["payments-api"]["environment"]["SAGEMAKER_ENDPOINT_URL"] == ""
    assert prod["payments-api"]["environment"]["FRAUD_PROFILE"] == "prod"


def test_airflow_metadata_database_is_created_by_postgres_init(compose):
    mount = next(v for v in services(compose)["postgres"]["volumes"] if "initdb" in v)
    scripts = list((REPO_ROOT / mount.split(":")[0]).glob("*.sql"))
    assert any("CREATE DATABASE airflow_db" in p.read_text() for p in scripts)
    url = services(compose)["airflow-scheduler"]["environment"][
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"
    ]
    assert url.endswith("/airflow_db") and Path(url).name == Settings().airflow_database_name


PRODUCTION_IMAGES = ("airflow/Dockerfile", "infra/sagemaker/Dockerfile")
DEV_PACKAGE = REPO_ROOT / "fraud-devstack"
# What the dev stack and the benches are called, and were called inside fraud_pipeline.
DEV_NAMES = {"fraud_devstack", "fraud-devstack", "devstack", "bench"}


def instructions(dockerfile: Path) -> list[list[str]]:
    """The Dockerfile's instructions, continuation lines joined, each split into words."""
    joined = re.sub(r"\\\n", " ", dockerfile.read_text())
    lines = [line.strip() for line in joined.splitlines()]
    return [line.split() for line in lines if line and not line.startswith("#")]


def dev_code_in_image(dockerfile: Path) -> list[str]:
    """What of the dev package the image would hold: copied trees, installed names."""
    found = []
    for words in instructions(dockerfile):
        if words[0] == "COPY":
            sources = [w for w in words[1:-1] if not w.startswith("--")]
            for source in (REPO_ROOT / s for s in sources):
                if source.resolve().is_relative_to(DEV_PACKAGE) or DEV_PACKAGE.is_relative_to(
                    source.resolve()
                ):
                    found.append(f"COPY {source.relative_to(REPO_ROOT)}")
                elif source.is_dir():
                    found += [
                        str(p.relative_to(REPO_ROOT))
                        for p in source.rglob("*")
                        if p.is_dir() and p.name in DEV_NAMES and "__pycache__" not in p.parts
                    ]
        elif words[0] == "RUN":
            found += [f"RUN … {w}" for w in words if w.strip("/").split("/")[-1] in DEV_NAMES]
    return found


@pytest.mark.parametrize("dockerfile", PRODUCTION_IMAGES)
def test_production_images_hold_no_dev_code(dockerfile):
    """Issue #28: the dev stack, simulators and benches are not shipped to production."""
    assert dev_code_in_image(REPO_ROOT / dockerfile) == []


def test_the_dev_code_check_sees_a_copied_dev_package(tmp_path):
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(
        "FROM python:3.11-slim\nCOPY fraud-devstack/ /opt/dev/\n"
        "RUN pip install -e fraud-pipeline \\\n    -e fraud-devstack\nCOPY . /opt/all/\n"
    )
    assert dev_code_in_image(dockerfile) == [
        "COPY fraud-devstack",
        "RUN … fraud-devstack",
        "COPY .",
    ]
