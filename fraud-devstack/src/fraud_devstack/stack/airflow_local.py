"""A local Airflow for `make run` and the smoke test: LocalExecutor, metadata in PostgreSQL.

Everything Airflow needs is passed to its processes as environment variables
(`AIRFLOW__SECTION__KEY`, `AIRFLOW_CONN_*`), the same names as in docker-compose. The same
settings are also written to `<state dir>/airflow/airflow.cfg` (`write_config`), so that the
Airflow CLI of an on-call engineer (`fraud-dev airflow -- dags list-runs fraud_pipeline`, or
`AIRFLOW_HOME=.local/airflow airflow ...`) works on the stack's own metadata database instead of
creating a stray sqlite one. The state lives under `<state dir>/airflow`: the generated secrets
(JWT, Fernet, API session key) and the admin's password, created once and reused by later runs.
Dev only: the simple auth manager with one `admin` user.
"""

from __future__ import annotations

import configparser
import contextlib
import json
import os
import secrets
import sys
import time
from base64 import urlsafe_b64encode
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.engine import make_url

from fraud_pipeline.config import REPO_ROOT
from fraud_pipeline.security.log_masking import AIRFLOW_LOGGING_CONFIG_CLASS

ADMIN_USER = "admin"
JWT_SECRET_BYTES = 64  # Airflow warns about a JWT secret shorter than 64 bytes
DAGS_FOLDER = REPO_ROOT / "airflow" / "dags"
PIPELINE_DAG = "fraud_pipeline"
RETRAIN_DAG = "fraud_retrain"
DAG_IDS = (PIPELINE_DAG, "fraud_daily_report", "fraud_model_monitor", RETRAIN_DAG)
# Left paused by `make run` (as the DAG itself starts): unpaused, its latest weekly slot would
# retrain on the whole training files at the first start.
STARTED_PAUSED = (RETRAIN_DAG,)
# A stop fails the runs it interrupts with this note; the next start runs those of the daily
# DAGs again (a morning summary is never lost to a Ctrl-C). The per-minute DAG's interrupted
# minutes need no re-run: the next start catches them up from the high-water mark.
INTERRUPTED_NOTE = "interrupted by a stop of make run: run again at the next start"
RERUN_NOTE = "run again after a stop of make run interrupted it"
RERUN_WHEN_INTERRUPTED = tuple(dag_id for dag_id in DAG_IDS if dag_id != "fraud_pipeline")
SIMPLE_AUTH_MANAGER = (
    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
)
# The Airflow processes `make run` starts, named as the docker-compose services. No triggerer:
# no task of ours defers (the daily DAGs' sensors reschedule), and on a stop it waited 10 s for
# its idle trigger runner, past the stop's grace (SIGKILL). Compose keeps one for deferrable tasks.
COMPONENTS = ("airflow-api-server", "airflow-scheduler", "airflow-dag-processor")


def airflow_executable() -> str:
    """The `airflow` script of this interpreter's environment (works without an activated venv)."""
    candidate = Path(sys.executable).parent / "airflow"
    return str(candidate) if candidate.exists() else "airflow"


@dataclass(frozen=True)
class AirflowHome:
    """AIRFLOW_HOME and the generated, git-ignored secrets kept in it."""

    path: Path
    admin_password: str
    passwords_file: Path
    jwt_secret: str
    fernet_key: str
    api_secret_key: str


def _read_or_create_json(path: Path, create: dict[str, str]) -> dict[str, str]:
    if path.exists():
        stored: dict[str, str] = json.loads(path.read_text())
        return stored
    path.write_text(json.dumps(create, indent=2))
    path.chmod(0o600)
    return create


# LocalExecutor forks every task from the scheduler, so what the scheduler imported, each task
# starts with: without this, every task of a per-minute run paid 2-4 s importing pandas,
# scikit-learn and XGBoost again (`make bench`: dag_run_s). Airflow imports this file, written
# to <home>/config, in each of its processes; only the scheduler preloads.
TASK_MODULES = (
    "fraud_pipeline.pipeline.steps",
    "fraud_pipeline.pipeline.airflow_support",
    "fraud_pipeline.ingest.extract",
    "fraud_pipeline.ingest.validate",
    "fraud_pipeline.storage.history",
    "fraud_pipeline.storage.upsert",
    "fraud_pipeline.model.artifacts",
    "fraud_pipeline.model.reasons",
    "fraud_pipeline.serving.endpoint",
    "fraud_pipeline.alerting.alerts",
    "fraud_pipeline.pipeline.shadow",  # the challenger's shadow_score, beside alert
    "fraud_pipeline.registry.models",
    "fraud_pipeline.monitoring.health",  # the daily monitor: its task starts warm too
    "sklearn.compose",
    "sklearn.preprocessing",
    "xgboost",
    "joblib",
    "boto3",
)
LOCAL_SETTINGS = f"""\"\"\"Written by fraud_devstack.stack.airflow_local: the scheduler preloads the tasks' modules.\"\"\"
import importlib
import sys

if sys.argv[1:2] == ["scheduler"]:
    for name in {TASK_MODULES!r}:
        importlib.import_module(name)
"""


def prepare_home(state_dir: Path) -> AirflowHome:
    """Create `<state dir>/airflow` with its secrets on first use; reuse them afterwards."""
    home = Path(state_dir).resolve() / "airflow"
    (home / "config").mkdir(parents=True, exist_ok=True)
    (home / "config" / "airflow_local_settings.py").write_text(LOCAL_SETTINGS)
    keys = _read_or_create_json(
        home / "secrets.json",
        {
            "jwt_secret": secrets.token_urlsafe(JWT_SECRET_BYTES),
            "fernet_key": urlsafe_b64encode(secrets.token_bytes(32)).decode(),
            "api_secret_key": secrets.token_urlsafe(32),
        },
    )
    if len(keys["jwt_secret"]) < JWT_SECRET_BYTES:  # made by an older version: Airflow warns
        keys["jwt_secret"] = secrets.token_urlsafe(JWT_SECRET_BYTES)
        (home / "secrets.json").write_text(json.dumps(keys, indent=2))
    passwords_file = home / "simple_auth_manager_passwords.json"
    passwords = _read_or_create_json(passwords_file, {ADMIN_USER: secrets.token_urlsafe(12)})
    return AirflowHome(
        path=home,
        admin_password=passwords[ADMIN_USER],
        passwords_file=passwords_file,
        jwt_secret=keys["jwt_secret"],
        fernet_key=keys["fernet_key"],
        api_secret_key=keys["api_secret_key"],
    )


def write_config(home: Path, env: dict[str, str]) -> Path:
    """`<home>/airflow.cfg` holding every `AIRFLOW__SECTION__KEY` of `env` (secrets: mode 0600).

    Airflow's processes get the same values from their environment; this file is for the
    Airflow CLI run by hand with `AIRFLOW_HOME=<home>`.
    """
    config = configparser.ConfigParser(interpolation=None)
    for name, value in sorted(env.items()):
        if name.startswith("AIRFLOW__") and name.count("__") >= 2:
            section, key = name.removeprefix("AIRFLOW__").lower().split("__", 1)
            if not config.has_section(section):
                config.add_section(section)
            config.set(section, key, value.replace("%", "%%"))  # Airflow interpolates %
    path = home / "airflow.cfg"
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
        out.write("# Written by `fraud-dev run` at each start: edit the settings, not this.\n")
        config.write(out)
    return path


def cli(state_dir: Path, arguments: list[str]) -> int:
    """`fraud-dev airflow -- ARGS`: the Airflow CLI on the local stack's state."""
    import subprocess

    home = Path(state_dir).resolve() / "airflow"
    if not (home / "airflow.cfg").exists():
        raise FileNotFoundError(
            f"no Airflow state in {home}: start the stack once with `make run` "
            "(or give its --state-dir)"
        )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__")} | {
        "AIRFLOW_HOME": str(home)
    }
    return subprocess.run([airflow_executable(), *arguments], env=env, check=False).returncode


def sqlalchemy_url(url: str) -> str:
    """A libpq URL (`postgresql://`) as SQLAlchemy's psycopg2 URL (socket hosts kept)."""
    parsed = make_url(url)
    if parsed.drivername not in ("postgres", "postgresql"):
        raise ValueError(f"not a PostgreSQL URL: {parsed.drivername}://…")
    return parsed.set(drivername="postgresql+psycopg2").render_as_string(hide_password=False)


def postgres_connection(url: str) -> str:
    """An Airflow connection (JSON form of AIRFLOW_CONN_*) for a libpq URL, sockets included."""
    parsed = make_url(url)
    query_host = parsed.query.get("host")
    if isinstance(query_host, tuple):
        query_host = query_host[0] if query_host else None
    connection: dict[str, Any] = {
        "conn_type": "postgres",
        "host": parsed.host or query_host or "127.0.0.1",
        "port": parsed.port or 5432,
        "login": parsed.username or "",
        "password": parsed.password or "",
        "schema": parsed.database or "",
    }
    return json.dumps(connection)


def local_aws_connection(model_url: str, region: str = "eu-west-3") -> str:
    """The `aws_default` connection for the local model server (it checks no signature)."""
    return json.dumps(
        {
            "conn_type": "aws",
            "login": "local",
            "password": "local",
            "extra": {"region_name": region, "endpoint_url": model_url},
        }
    )


def airflow_env(
    home: AirflowHome,
    *,
    metadata_url: str,
    database_url: str,
    model_url: str,
    port: int,
    smtp_host: str,
    smtp_port: int,
    dags_folder: Path = DAGS_FOLDER,
) -> dict[str, str]:
    """The environment every local Airflow process gets (added to the stack's environment)."""
    base_url = f"http://127.0.0.1:{port}"
    return {
        "AIRFLOW_HOME": str(home.path),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # New DAGs start paused: the stack unpauses each when it may run (the per-minute one
        # once the first start's back-fill has stored the cards' history: local_stack).
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        # Two cores on a laptop: a few task slots are plenty for per-minute runs.
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__FERNET_KEY": home.fernet_key,
        "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home.passwords_file),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base_url}/execution/",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sqlalchemy_url(metadata_url),
        "AIRFLOW__API__BASE_URL": base_url,
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__SECRET_KEY": home.api_secret_key,
        "AIRFLOW__API_AUTH__JWT_SECRET": home.jwt_secret,
        # Card numbers masked in the task log files too (security.airflow_logging).
        "AIRFLOW__LOGGING__LOGGING_CONFIG_CLASS": AIRFLOW_LOGGING_CONFIG_CLASS,
        # New or edited DAG files show up within 30 s instead of 5 min.
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        "AIRFLOW_CONN_FRAUD_DB": postgres_connection(database_url),
        "AIRFLOW_CONN_AWS_DEFAULT": local_aws_connection(model_url),
        "AIRFLOW_CONN_SMTP_DEFAULT": json.dumps(
            {"conn_type": "smtp", "host": smtp_host, "port": smtp_port}
        ),
    }


# Components that supervise child processes of their own (task workers, the trigger runner,
# DAG file processors) and stop them on SIGTERM: they alone are signalled.
STOP_THEIR_OWN_CHILDREN = frozenset({"airflow-scheduler", "airflow-dag-processor"})


def component_commands(port: int) -> dict[str, list[str]]:
    """The long-running Airflow processes (the parts of `airflow standalone`, one log each),
    through `airflow_main` so that a stop does not wait for their final garbage collection."""
    airflow = [sys.executable, "-m", "fraud_devstack.stack.airflow_main"]
    return {
        "airflow-api-server": [*airflow, "api-server", "--host", "127.0.0.1", "--port", str(port)],
        "airflow-scheduler": [*airflow, "scheduler"],
        "airflow-dag-processor": [*airflow, "dag-processor"],
    }


def migrate_command() -> list[str]:
    """`airflow db migrate`: creates or upgrades the metadata tables (a no-op when current)."""
    return [airflow_executable(), "db", "migrate"]


class AirflowClient:
    """Airflow's public REST API (v2) with the simple auth manager's token."""

    def __init__(self, base_url: str, user: str = ADMIN_USER, password: str = "") -> None:
        self.base_url = base_url.rstrip("/")
        self.user, self.password = user, password
        # generous: on a busy laptop the API server can take seconds to answer
        self._http = httpx.Client(base_url=self.base_url, timeout=30.0)
        self._token: str | None = None

    def close(self) -> None:
        self._http.close()

    def health(self) -> dict[str, Any]:
        """`/api/v2/monitor/health`, no login: database, scheduler, dag processor, triggerer."""
        response = self._http.get("/api/v2/monitor/health")
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def healthy(self) -> bool:
        try:
            health = self.health()
        except httpx.HTTPError:
            return False
        parts = ("metadatabase", "scheduler", "dag_processor")  # no triggerer: see COMPONENTS
        return all((health.get(p) or {}).get("status") == "healthy" for p in parts)

    def _headers(self) -> dict[str, str]:
        if self._token is None:
            response = self._http.post(
                "/auth/token", json={"username": self.user, "password": self.password}
            )
            response.raise_for_status()
            self._token = str(response.json()["access_token"])
        return {"Authorization": f"Bearer {self._token}"}

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, path, headers=self._headers(), **kwargs)
        response.raise_for_status()
        return response.json()

    def dag_ids(self) -> set[str]:
        body = self.request("GET", "/api/v2/dags", params={"limit": 100})
        return {dag["dag_id"] for dag in body["dags"]}

    def is_paused(self, dag_id: str) -> bool:
        return bool(self.request("GET", f"/api/v2/dags/{dag_id}")["is_paused"])

    def unpause(self, dag_id: str) -> None:
        self.request("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})

    def pause(self, dag_id: str) -> None:
        self.request("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": True})

    def mark_interrupted(self, dag_id: str, run_id: str) -> None:
        """Fail a run a stop cut short, noting why: the next start runs it again."""
        self.request(
            "PATCH",
            f"/api/v2/dags/{dag_id}/dagRuns/{run_id}",
            json={"state": "failed", "note": INTERRUPTED_NOTE},
        )

    def rerun(self, dag_id: str, run_id: str) -> None:
        """Clear a run: the scheduler runs all its tasks again (the note says so, once)."""
        self.request(
            "POST",
            f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/clear",
            json={"dry_run": False, "note": RERUN_NOTE},
        )

    def dag_runs(self, dag_id: str, limit: int = 25) -> list[dict[str, Any]]:
        """The most recent runs first (state, run_type, data interval)."""
        body = self.request(
            "GET",
            f"/api/v2/dags/{dag_id}/dagRuns",
            params={"limit": limit, "order_by": "-run_after"},
        )
        runs: list[dict[str, Any]] = body["dag_runs"]
        return runs

    def wait_for_dags(self, dag_ids: tuple[str, ...], timeout: float) -> set[str]:
        """The DAGs among `dag_ids` that the dag processor has parsed within `timeout`."""
        deadline = time.monotonic() + timeout
        present: set[str] = set()
        while True:
            with contextlib.suppress(httpx.HTTPError):  # still starting: try again
                present = self.dag_ids() & set(dag_ids)
            if present == set(dag_ids) or time.monotonic() > deadline:
                return present
            time.sleep(2.0)
