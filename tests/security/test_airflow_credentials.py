"""No default credential outside local dev: production must be given every secret.

docker-compose.yml (dev) carries laptop defaults (`${POSTGRES_PASSWORD:-postgres}`,
`dev-only-…`); docker-compose.prod.yml must leave none of them in effect. The check resolves the
merged production environment of every service the way Compose does, with only the variables
production is forced to set (`${VAR:?…}`) given, and looks for any default that is left.
`make run`'s own Airflow (airflow_local, dev only) generates its secrets and admin password.
"""

from __future__ import annotations

import re
import stat
from typing import Any

import yaml

from fraud_devstack.stack import airflow_local
from fraud_pipeline.config import REPO_ROOT

INTERPOLATION = re.compile(r"\$\{(\w+)(?::?([-?])([^}]*))?\}")
URL_PASSWORD = re.compile(r"://[^/:@\s]+:([^@\s]*)@")
DEFAULT_PASSWORDS = {"", "postgres", "airflow", "admin", "password", "local", "changeme"}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|FERNET|_KEY$|TOKEN")


def compose(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO_ROOT / name).read_text())
    return data


def prod_environments() -> dict[str, dict[str, str]]:
    """Each production service's environment: the dev one with prod's keys laid over it."""
    dev, prod = compose("docker-compose.yml")["services"], compose("docker-compose.prod.yml")
    merged = {}
    for name, service in dev.items():
        override = prod["services"].get(name, {})
        if "stand-ins" in override.get("profiles", service.get("profiles", [])):
            continue  # not started in production
        merged[name] = {**service.get("environment", {}), **override.get("environment", {})}
    return merged


def required_in_prod(environments: dict[str, dict[str, str]]) -> set[str]:
    return {
        match.group(1)
        for env in environments.values()
        for value in env.values()
        for match in INTERPOLATION.finditer(str(value))
        if match.group(2) == "?"
    }


def resolve(value: str, given: set[str]) -> str:
    """Compose's interpolation with only `given` set (to `<NAME>`): defaults apply elsewhere."""

    def one(match: re.Match[str]) -> str:
        name, kind, default = match.groups()
        if name in given:
            return f"<{name}>"
        assert kind != "?", f"{name} is required"
        return default or ""

    return INTERPOLATION.sub(one, value)


def test_production_runs_with_no_default_credential():
    environments = prod_environments()
    given = required_in_prod(environments)
    found = []
    for service, env in environments.items():
        for key, raw in env.items():
            value = resolve(str(raw), given)
            if "dev-only" in value:
                found.append(f"{service}: {key} = {value}")
            for password in URL_PASSWORD.findall(value):
                if password in DEFAULT_PASSWORDS:
                    found.append(f"{service}: {key} has the default password {password!r}")
            if SECRET_NAME.search(key) and not key.endswith("_FILE") and "<" not in value:
                found.append(f"{service}: {key} = {value!r} is not taken from the environment")
    assert found == []
    airflow = environments["airflow-api-server"]
    for key in (
        "AIRFLOW__API_AUTH__JWT_SECRET",
        "AIRFLOW__API__SECRET_KEY",
        "AIRFLOW__CORE__FERNET_KEY",
    ):
        assert f"${{{key}:?" in airflow[key], key


def test_the_dev_compose_defaults_are_marked_dev_only():
    """The laptop defaults exist, and say so: nobody mistakes them for real secrets."""
    env = compose("docker-compose.yml")["services"]["airflow-api-server"]["environment"]
    assert "dev-only" in env["AIRFLOW__API_AUTH__JWT_SECRET"]
    assert "Dev only" in (REPO_ROOT / "docker-compose.yml").read_text()


def test_local_airflow_generates_its_secrets_and_admin_password(tmp_path):
    """`make run`: no fixed admin password; secrets random per machine, readable by the owner only."""
    first = airflow_local.prepare_home(tmp_path / "one")
    second = airflow_local.prepare_home(tmp_path / "two")
    again = airflow_local.prepare_home(tmp_path / "one")
    assert first.admin_password != second.admin_password
    assert first.admin_password not in DEFAULT_PASSWORDS and len(first.admin_password) >= 16
    assert again.admin_password == first.admin_password  # kept, not regenerated
    assert first.jwt_secret != second.jwt_secret and first.fernet_key != second.fernet_key
    for path in (first.passwords_file, first.path / "secrets.json"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
