"""`fraud-dev run` (`make run`): the whole pipeline on one machine, without Docker.

In order: PostgreSQL (DATABASE_URL, else 127.0.0.1:5432, else the embedded server under
`<state dir>/pgdata`), migrations, the model (trained only if the artifacts are missing), then
the services, each a child process with its log in `<state dir>/logs/<service>.log`: payments
API, model server, mail catcher + web inbox, Airflow (LocalExecutor, metadata database
`airflow_db` in the same server) and the Streamlit report. It waits for each health check,
back-fills yesterday and today until now on the day's first start, unpauses the DAGs (the per-minute
one once that back-fill has ended: live payments are scored on their card's whole history), prints
the URLs and credentials, then a
short status line every so often until Ctrl-C stops everything (no orphans).

Service names are the docker-compose service names: the two ways to run stay in step (a test
compares them).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from fraud_devstack import cli as dev_cli
from fraud_devstack.stack import airflow_local
from fraud_devstack.stack.supervisor import Child, ServiceSpec, Supervisor
from fraud_pipeline import clock
from fraud_pipeline.alerting import mail
from fraud_pipeline.config import REPO_ROOT, Settings, get_settings
from fraud_pipeline.net import free_port, port_open
from fraud_pipeline.pipeline.airflow_support import earliest_reported_day
from fraud_pipeline.security import users
from fraud_pipeline.storage import db, watermark

DASHBOARD_APP = REPO_ROOT / "fraud-dashboard" / "app.py"
# Every docker-compose service and its counterpart here (postgres and airflow-init are steps).
COMPOSE_SERVICES = (
    "postgres",
    "airflow-init",
    "payments-api",
    "sagemaker-local",
    "mailpit",
    "fraud-dashboard",
    "backfill",
    *airflow_local.COMPONENTS,
)
STACK_ID_ENV = "FRAUD_STACK_ID"  # set in every child: finds strays after a stop
# Stopped last, after the scheduler: what a task that is finishing still talks to.
SERVED_TO_TASKS = frozenset({"airflow-api-server", "payments-api", "sagemaker-local", "mailpit"})
FIRST_STOP_GRACE_S = 8.0  # the scheduler waits for its running tasks (a few seconds each)


@dataclass(frozen=True)
class Ports:
    payments: int
    model: int
    smtp: int
    inbox: int
    airflow: int
    report: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Ports:
        return cls(
            payments=_port_of(settings.payments_api_url, 8000),
            model=_port_of(settings.sagemaker_endpoint_url or "", 8080),
            smtp=settings.smtp_port,
            inbox=settings.inbox_port,
            airflow=settings.airflow_port,
            report=_port_of(settings.report_url, 8501),
        )

    @classmethod
    def free(cls) -> Ports:
        """Ports free right now, for a stack beside another one (the smoke test)."""
        return cls(**{f.name: free_port() for f in fields(cls)})

    def busy(self) -> list[str]:
        return [
            f"{name}={port}" for name, port in asdict(self).items() if port_open("127.0.0.1", port)
        ]


def _port_of(url: str, default: int) -> int:
    return urlsplit(url).port or default


@dataclass(frozen=True)
class Urls:
    payments: str
    model: str
    inbox: str
    airflow: str
    report: str

    @classmethod
    def local(cls, ports: Ports) -> Urls:
        host = "http://127.0.0.1"
        return cls(
            payments=f"{host}:{ports.payments}",
            model=f"{host}:{ports.model}",
            inbox=f"{host}:{ports.inbox}",
            airflow=f"{host}:{ports.airflow}",
            report=f"{host}:{ports.report}",
        )


def http_ok(
    url: str, accept: Callable[[int], bool] = lambda code: code == 200
) -> Callable[[], bool]:
    def check() -> bool:
        return accept(httpx.get(url, timeout=2.0).status_code)

    return check


def cli_command(*args: str) -> list[str]:
    """`fraud-pipeline ARGS` or `fraud-dev ARGS` (whichever has the command), run by this
    interpreter (no activated venv or PATH needed)."""
    return dev_cli.command_line(*args)


def cli_has(command: str) -> bool:
    """Whether a CLI has this subcommand yet (the stack integrates pieces as they land)."""
    return dev_cli.module_with(command) is not None


# --- PostgreSQL --------------------------------------------------------------------------------


def resolve_server(settings: Settings, state_dir: Path) -> tuple[str, object | None]:
    """A server URL (maintenance db) and the embedded server's handle when we started one.

    Same order as `db.server_url`, but the embedded server lives in this stack's state dir and
    stops when the supervisor exits (its data stays for the next run).
    """
    if settings.database_url:
        return db.with_database(settings.database_url, "postgres"), None
    if port_open("127.0.0.1", 5432):
        return db.LOCAL_SERVER_URL, None
    import pgserver

    data_dir = state_dir / "pgdata"
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(data_dir, cleanup_mode="stop")
    return str(server.get_uri()), server


def paused_with_queued_runs(client: airflow_local.AirflowClient, dag_id: str) -> list[str]:
    """A warning when `dag_id` is paused with runs queued (a trigger of a paused DAG waits, with
    no word from Airflow), else nothing."""
    if not client.is_paused(dag_id):
        return []
    queued = [run for run in client.dag_runs(dag_id, limit=10) if run["state"] == "queued"]
    if not queued:
        return []
    return [f"! {dag_id}: {len(queued)} run(s) queued while the DAG is paused: unpause it to run"]


# --- the stack ---------------------------------------------------------------------------------


# A new card's first payments are what the model flags wrongly most (README, Model: precision 0.73
# on a generated week's first day, 0.94 from its fifth): a running system's cards have a history,
# so the first start loads the week before the reported days too.
HISTORY_DAYS = 7
DEMO_LATE_SHARE = (
    0.02  # `make run`: payments the simulator delivers late, unless PAYMENTS_LATE_SHARE
)


@dataclass
class StackOptions:
    state_dir: Path
    ports: Ports
    only: frozenset[str] | None = None  # compose names to start; None = all
    backfill: bool = True
    backfill_hours: int = 24  # of yesterday (its end), at most all of it; today is always whole
    history_days: int = HISTORY_DAYS  # whole days before that, so the cards have a history
    status_every: float = 30.0
    payments_rate: float = 60.0  # generated payments per minute
    start_timeout: float = 180.0


def backfill_window(hours: int, history_days: int = 0) -> tuple[datetime, datetime]:
    """The first start of a day's back-fill: the last `hours` of yesterday (at most all of it)
    and today from midnight until now (business time, 23/24/25-hour days): [start, now).
    With `hours` >= 24 it starts at the earliest day the daily DAGs' first runs report (the day
    before yesterday too before 07:00), so the morning summary and the monitor have their day.
    `history_days` days before that start are loaded too: the cards' recent history.

    From `now` on, the DAG's runs take over (each from the high-water mark: no gap).
    """
    first, midnight = clock.day_bounds(clock.yesterday())
    start = max(first.astimezone(UTC), midnight.astimezone(UTC) - timedelta(hours=hours))
    if hours >= 24:  # all of it, also a 25-hour day, from the first day a daily DAG reports
        reported = min(clock.yesterday(), earliest_reported_day())
        start = clock.day_bounds(reported)[0].astimezone(UTC)
    if history_days:  # the same wall-clock time, that many days earlier
        day = clock.business_day(start)
        since_midnight = start - clock.day_start(day)
        start = (clock.day_start(day - timedelta(days=history_days)) + since_midnight).astimezone(
            UTC
        )
    # whole seconds: the payments API's page tokens carry milliseconds, an end in microseconds
    # would fail the ingest's check of the served end on the second page
    return start.astimezone(midnight.tzinfo), clock.now().replace(microsecond=0)


def run_states(runs: list[dict[str, Any]]) -> str:
    """Runs counted by state for the status line; a run a stop interrupted (marked failed with
    INTERRUPTED_NOTE, its minutes caught up at the next start) counts as interrupted, not failed."""
    states: dict[str, int] = {}
    for run in runs:
        interrupted = run["state"] == "failed" and run.get("note") == airflow_local.INTERRUPTED_NOTE
        state = "interrupted" if interrupted else str(run["state"])
        states[state] = states.get(state, 0) + 1
    return ", ".join(f"{n} {s}" for s, n in sorted(states.items())) or "no run yet"


def first_admin(url: str) -> str | None:
    """On a database with no account yet, the account `admin` (role admin); its one-time
    password, printed once by the banner (None: accounts exist already)."""
    with db.transaction(url) as cur:
        cur.execute("SELECT EXISTS (SELECT 1 FROM app_users)")
        row = cur.fetchone()
        if row and row[0]:
            return None
        return users.add(cur, "admin", "admin", "make run")


class LocalStack:
    """Prepares state, starts the services, reports, and stops them; `run()` is the CLI."""

    def __init__(self, options: StackOptions, settings: Settings | None = None) -> None:
        self.options = options
        self.settings = settings or get_settings()
        self.state_dir = options.state_dir.resolve()
        self.urls = Urls.local(options.ports)
        # inherited when a supervisor of ours (a test, the bench) must find every descendant
        self.stack_id = os.environ.get(STACK_ID_ENV) or uuid.uuid4().hex
        self.supervisor: Supervisor | None = None
        self.airflow_home: airflow_local.AirflowHome | None = None
        self.fraud_db_url = ""
        self.admin_password: str | None = None  # the first admin's one-time password, if made now
        self.backfill: Child | None = None
        self.held_dags: tuple[str, ...] = ()  # paused until the back-fill ends
        self.state_written = False  # stack.json is this stack's (stop deletes it then only)
        self.unpause_pending: tuple[str, ...] = ()  # a failed API call left them paused
        self.backfill_day = clock.today().isoformat()
        self._embedded: object | None = None
        self.t0 = time.monotonic()
        logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per health probe otherwise

    def wants(self, name: str) -> bool:
        return self.options.only is None or name in self.options.only

    def say(self, message: str) -> None:
        print(f"[{time.monotonic() - self.t0:5.1f}s] {message}", flush=True)

    # --- steps ---------------------------------------------------------------------------

    def prepare_database(self) -> str:
        """Resolve the server, create + migrate fraud_db; returns the server URL."""
        from fraud_pipeline.registry.versions import set_up_database

        server, self._embedded = resolve_server(self.settings, self.state_dir)
        self.fraud_db_url = self.settings.database_url or db.with_database(
            server, self.settings.database_name
        )
        # The pipeline's own database (not the server's maintenance one the stack connects to)
        embedded = f" (embedded server in {self.state_dir / 'pgdata'})" if self._embedded else ""
        self.say(f"PostgreSQL: {_redact(self.fraud_db_url)}{embedded}")
        applied = set_up_database(self.fraud_db_url)
        self.say(f"fraud_db migrated ({len(applied)} new migration(s))")
        self.admin_password = first_admin(self.fraud_db_url)
        return server

    def ensure_model(self) -> None:
        if (self.settings.artifacts_dir / "metadata.json").exists():
            self.say(f"model artifacts found in {self.settings.artifacts_dir}")
            return
        log = self.state_dir / "logs" / "train.log"
        self.say(f"no model artifacts: training (first run only, a few minutes; log {log})")
        with log.open("ab") as out:
            done = subprocess.run(cli_command("train"), stdout=out, stderr=out, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"`fraud-pipeline train` failed; see {log}")
        self.say("model trained")

    def child_env(self) -> dict[str, str]:
        ports = self.options.ports
        return {
            **os.environ,
            STACK_ID_ENV: self.stack_id,
            "PYTHONUNBUFFERED": "1",
            "DATABASE_URL": self.fraud_db_url,
            "LOCAL_STATE_DIR": str(self.state_dir),
            "PAYMENTS_API_URL": self.urls.payments,
            "SAGEMAKER_ENDPOINT_URL": self.urls.model,
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(ports.smtp),
            "INBOX_PORT": str(ports.inbox),
            "AIRFLOW_PORT": str(ports.airflow),
            "REPORT_URL": self.urls.report,
        }

    def late_share(self) -> float:
        """PAYMENTS_LATE_SHARE when set, else DEMO_LATE_SHARE: `make run` shows late payments
        arriving and being caught (within the bound: PAYMENTS_LATE_DELAY_MAX_S is 8 min)."""
        if "payments_late_share" in self.settings.model_fields_set:
            return self.settings.payments_late_share
        return DEMO_LATE_SHARE

    def app_services(self) -> list[ServiceSpec]:
        """Everything but Airflow, in start order; pieces not landed yet are skipped, loudly."""
        ports, urls = self.options.ports, self.urls
        specs = [
            ServiceSpec(
                "payments-api",
                cli_command(
                    "serve-payments",
                    "--port",
                    str(ports.payments),
                    "--rate",
                    str(self.options.payments_rate),
                    "--late-share",
                    str(self.late_share()),
                ),
                # any HTTP answer below 500 means the server is serving
                http_ok(f"{urls.payments}/health", lambda code: code < 500),
            ),
            ServiceSpec(
                "sagemaker-local",
                # --reload: `fraud-pipeline model promote/rollback` swap its model in place
                cli_command("serve-model", "--port", str(ports.model), "--reload"),
                http_ok(f"{urls.model}/ping"),
            ),
            ServiceSpec(
                "mailpit",
                cli_command(
                    "serve-mail",
                    "--port",
                    str(ports.smtp),
                    "--web-port",
                    str(ports.inbox),
                    "--maildir",
                    str(self.state_dir / "mail"),
                ),
                http_ok(f"{urls.inbox}/health"),
            ),
            ServiceSpec(
                "fraud-dashboard",
                [
                    sys.executable,
                    "-m",
                    "streamlit",
                    "run",
                    str(DASHBOARD_APP),
                    "--server.port",
                    str(ports.report),
                    "--server.address",
                    "127.0.0.1",
                    "--server.headless",
                    "true",
                    "--browser.gatherUsageStats",
                    "false",
                ],
                http_ok(f"{urls.report}/_stcore/health"),
            ),
        ]
        available = {
            "payments-api": lambda: cli_has("serve-payments"),
            "sagemaker-local": lambda: cli_has("serve-model"),
            "mailpit": lambda: cli_has("serve-mail"),
            "fraud-dashboard": DASHBOARD_APP.exists,
        }
        chosen = []
        for spec in specs:
            if not self.wants(spec.name):
                continue
            if available[spec.name]():
                chosen.append(spec)
            else:
                self.say(f"! {spec.name}: not available in this checkout yet, skipped")
        return chosen

    def prepare_airflow(self, server_url: str) -> dict[str, str]:
        """Airflow's home, secrets and metadata database; the environment of its processes."""
        self.airflow_home = airflow_local.prepare_home(self.state_dir)
        metadata_url = db.with_database(server_url, self.settings.airflow_database_name)
        if db.ensure_database(metadata_url):
            self.say(f"created Airflow metadata database {self.settings.airflow_database_name}")
        env = airflow_local.airflow_env(
            self.airflow_home,
            metadata_url=metadata_url,
            database_url=self.fraud_db_url,
            model_url=self.urls.model,
            port=self.options.ports.airflow,
            smtp_host="127.0.0.1",
            smtp_port=self.options.ports.smtp,
        )
        airflow_local.write_config(self.airflow_home.path, env)
        return env

    def airflow_services(self, env: dict[str, str]) -> list[ServiceSpec]:
        commands = airflow_local.component_commands(self.options.ports.airflow)
        api_health = http_ok(f"{self.urls.airflow}/api/v2/monitor/health")
        client = self.airflow_client()
        return [
            ServiceSpec(
                name,
                command,
                api_health if name == "airflow-api-server" else client.healthy,
                env,
                stops_its_children=name in airflow_local.STOP_THEIR_OWN_CHILDREN,
            )
            for name, command in commands.items()
        ]

    def airflow_client(self) -> airflow_local.AirflowClient:
        assert self.airflow_home is not None
        return airflow_local.AirflowClient(
            self.urls.airflow, airflow_local.ADMIN_USER, self.airflow_home.admin_password
        )

    def unpause_dags(self, held: tuple[str, ...] = ()) -> None:
        """Unpause the DAGs (new ones start paused) but those `held` until the back-fill ends,
        which are paused (a DAG of an earlier day's start is unpaused) and those started paused
        on purpose. If the API fails, the watch loop tries again (`release_held_dags`)."""
        client = self.airflow_client()
        try:
            present = client.wait_for_dags(airflow_local.DAG_IDS, timeout=60)
            for dag_id in held:
                if dag_id in present:
                    client.pause(dag_id)
                self.say(f"DAG {dag_id} waits for the back-fill: the cards' history first")
            for dag_id in airflow_local.DAG_IDS:
                if dag_id in airflow_local.STARTED_PAUSED:
                    self.say(f"DAG {dag_id} left paused: trigger it by hand, or unpause it")
                elif dag_id in present and dag_id not in held:
                    client.unpause(dag_id)
                    self.say(f"DAG {dag_id} unpaused")
                elif dag_id not in present:
                    self.say(f"! DAG {dag_id} not found in {airflow_local.DAGS_FOLDER} (yet)")
            self.rerun_interrupted(client)
        except httpx.HTTPError as error:
            self.say(f"! could not unpause the DAGs through the API: {error!r}; retrying")
            waiting = (d for d in airflow_local.DAG_IDS if d not in airflow_local.STARTED_PAUSED)
            self.unpause_pending = tuple(d for d in waiting if d not in held)
        finally:
            client.close()

    def rerun_interrupted(self, client: airflow_local.AirflowClient) -> None:
        """Run again what the last stop interrupted in the daily DAGs (see INTERRUPTED_NOTE)."""
        for dag_id in airflow_local.RERUN_WHEN_INTERRUPTED:
            for run in client.dag_runs(dag_id, limit=100):
                if run["state"] == "failed" and run.get("note") == airflow_local.INTERRUPTED_NOTE:
                    client.rerun(dag_id, run["dag_run_id"])
                    self.say(f"{dag_id} {run['dag_run_id']}: interrupted at the last stop, rerun")

    def start_backfill(self) -> Child | None:
        """Process yesterday and today until now on the day's first start, in the background.

        The marker holds the business day of the last back-fill: a later start the same day
        leaves the gap since the last stop to the DAG (high-water mark), a start on another day
        back-fills again, so the report has data and today's earlier payments are scored.

        Alerts are not sent per back-filled hour: the frauds stay pending and the first
        scheduled run sends them, those older than ALERT_MAX_AGE_MIN in one catch-up digest,
        the recent ones in its live alert.
        """
        assert self.supervisor is not None
        marker = self.state_dir / "backfilled"
        if marker.exists() and marker.read_text()[:10] == clock.today().isoformat():
            self.say(f"today already back-filled ({marker.read_text().strip()})")
            return None
        if not cli_has("run-interval"):
            self.say("! back-fill skipped: `fraud-pipeline run-interval` is not available")
            return None
        start, end = backfill_window(self.options.backfill_hours, self.options.history_days)
        command = cli_command(
            "run-interval", "--start", start.isoformat(), "--end", end.isoformat(), "--no-alerts"
        )
        job = self.supervisor.start(ServiceSpec("backfill", command, _done, oneshot=True))
        self.backfill_day = clock.today().isoformat()
        self.say(f"back-filling {start:%Y-%m-%d %H:%M} → {end:%Y-%m-%d %H:%M} in the background")
        return job

    def check_backfill(self, job: Child | None) -> Child | None:
        """Report a finished back-fill once and unpause what waited for it; returns the job
        while it still runs."""
        if job is None:
            self.release_held_dags()  # again, if an unpause failed
            return None
        if job.exit_code() is None:
            return job
        elapsed = time.monotonic() - job.started_at
        if job.exit_code() == 0:
            (self.state_dir / "backfilled").write_text(
                f"{self.backfill_day} (business day), at "
                f"{datetime.now().isoformat(timespec='seconds')}, {elapsed:.0f} s\n"
            )
            self.say(f"back-fill done in {elapsed:.0f} s: up to the start")
        else:
            self.say(f"! back-fill failed (exit {job.exit_code()}); see {job.log_path}")
        self.backfill = None
        self.release_held_dags()
        return None

    def release_held_dags(self) -> None:
        """Unpause what waited for the back-fill (also after a failed one: the pipeline must run;
        its first run catches up from the high-water mark), and what a failed API call left."""
        waiting = self.unpause_pending + (() if self.backfill else self.held_dags)
        if not waiting:
            return
        client = self.airflow_client()
        try:
            for dag_id in waiting:
                client.unpause(dag_id)
                self.say(
                    f"DAG {dag_id} unpaused"
                    + (" (the back-fill has ended)" if dag_id in self.held_dags else "")
                )
            self.unpause_pending = ()
            if not self.backfill:
                self.held_dags = ()
        except httpx.HTTPError as error:
            self.say(f"! could not unpause {', '.join(waiting)}: {error!r}; retrying")
        finally:
            client.close()

    # --- run -----------------------------------------------------------------------------

    def start(self) -> None:
        """Everything up to a healthy, ready stack (raises if a service cannot start)."""
        (self.state_dir / "logs").mkdir(parents=True, exist_ok=True)
        busy = self.options.ports.busy()
        if busy:
            raise RuntimeError(
                f"ports already in use: {', '.join(busy)} (another `make run`? "
                "set the *_PORT/*_URL settings or use --free-ports)"
            )
        server_url = self.prepare_database()
        if self.wants("sagemaker-local"):
            self.ensure_model()
        self.supervisor = Supervisor(self.state_dir / "logs", self.child_env())
        apps = [self.supervisor.start(spec) for spec in self.app_services()]
        self.say(f"started {', '.join(c.name for c in apps) or 'no app service'}")
        airflow: list[Child] = []
        if any(self.wants(name) for name in airflow_local.COMPONENTS):
            env = self.prepare_airflow(server_url)
            init = self.supervisor.start(
                ServiceSpec("airflow-init", airflow_local.migrate_command(), _done, env, True)
            )
            self.say("airflow-init: `airflow db migrate` while the services start")
            self.supervisor.wait_healthy(apps, self.options.start_timeout, self.say)
            self.supervisor.wait_done(init, self.options.start_timeout, self.say)
            # The API server first: a task the scheduler launched before it answers fails with
            # a ReadTimeout traceback (then passes on retry) - not what a first start should show.
            api, *others = sorted(
                self.airflow_services(env), key=lambda spec: spec.name != "airflow-api-server"
            )
            airflow = [self.supervisor.start(api)]
            self.supervisor.wait_healthy(airflow, self.options.start_timeout, self.say)
            airflow += [self.supervisor.start(spec) for spec in others]
            self.say("started Airflow: " + ", ".join(c.name for c in airflow))
        else:
            self.supervisor.wait_healthy(apps, self.options.start_timeout, self.say)
        self.supervisor.wait_healthy(airflow, self.options.start_timeout, self.say)
        if self.wants("sagemaker-local"):
            self.serve_champion()
        if self.options.backfill and self.wants("payments-api"):
            self.backfill = self.start_backfill()
        if airflow:
            # Live payments are scored on their card's whole history: the per-minute DAG starts
            # once the back-fill has stored it, then catches up from the high-water mark the
            # back-fill moved (no minute lost, README "Catch-up").
            self.held_dags = (airflow_local.PIPELINE_DAG,) if self.backfill else ()
            self.unpause_dags(held=self.held_dags)
        self.write_state()

    def serve_champion(self) -> None:
        """The model server starts on ARTIFACTS_DIR: after a promotion (a past `make run`'s
        fraud_retrain, `model promote`) it must serve the registry's champion again."""
        from fraud_pipeline.model.checksums import ArtifactError
        from fraud_pipeline.registry import models, versions
        from fraud_pipeline.registry.rollout import RolloutError, roll_out

        conn = db.connect(self.fraud_db_url)
        try:
            champion = models.promoted_champion(conn, self.settings)
            if champion is None:
                return
            model_dir = versions.fetch_verified(models.model_store(self.settings), champion)
            outcome = roll_out(model_dir, champion, self.settings, model_url=self.urls.model)
            self.say(f"the champion: {outcome}")
        except (ArtifactError, RolloutError, OSError) as error:
            self.say(
                f"! the model server serves {self.settings.artifacts_dir}, not the champion: {error}"
            )
        finally:
            conn.close()

    def write_state(self) -> None:
        """`<state dir>/stack.json`: what runs where (for tools and the smoke test)."""
        assert self.supervisor is not None
        state = {
            "stack_id": self.stack_id,
            "supervisor_pid": os.getpid(),
            "ports": asdict(self.options.ports),
            "urls": asdict(self.urls),
            "database_url": self.fraud_db_url,
            "maildir": str(self.state_dir / "mail"),
            "children": {c.name: c.process.pid for c in self.supervisor.children},
            "ready_after_s": round(time.monotonic() - self.t0, 1),
        }
        (self.state_dir / "stack.json").write_text(json.dumps(state, indent=2))
        self.state_written = True

    def banner(self) -> str:
        names = {c.name for c in self.supervisor.children} if self.supervisor else set()
        lines = [f"fraud pipeline ready in {time.monotonic() - self.t0:.0f} s", ""]

        def row(name: str, label: str, url: str, extra: str = "") -> None:
            if name in names:
                lines.append(f"  {label:<22} {url:<28} {extra}")

        if self.airflow_home:
            creds = f"login {airflow_local.ADMIN_USER} / {self.airflow_home.admin_password}"
            row("airflow-api-server", "Airflow UI", self.urls.airflow, creds)
        report_login = (
            f"login admin / {self.admin_password} (one-time: shown once; "
            "`fraud-pipeline users add NAME --role analyst` for each person)"
            if self.admin_password
            else "your own account (`fraud-pipeline users list`)"
        )
        row("fraud-dashboard", "Morning report", self.urls.report, report_login)
        row("mailpit", "Fraud alert inbox", self.urls.inbox, f"files in {self.state_dir / 'mail'}")
        row("payments-api", "Payments API", self.urls.payments)
        row("sagemaker-local", "Model server", self.urls.model, "POST /invocations")
        lines += [
            f"  {'PostgreSQL':<22} {_redact(self.fraud_db_url)}",
            f"  {'Logs':<22} {self.state_dir / 'logs'}/<service>.log",
            "",
            "Ctrl-C stops everything; the next `make run` reuses the database and Airflow state.",
        ]
        return "\n".join(lines)

    def status_line(self) -> str:
        """Runs, mail, what was scored in the last hour, lag, and the model served."""
        parts = []
        if self.airflow_home is not None:
            client = self.airflow_client()
            try:
                runs = client.dag_runs("fraud_pipeline", limit=100)
                parts.append(f"fraud_pipeline runs: {run_states(runs)}")
                parts.extend(paused_with_queued_runs(client, airflow_local.RETRAIN_DAG))
            except (httpx.HTTPError, KeyError):
                parts.append("fraud_pipeline runs: ?")
            finally:
                client.close()
        parts.append(f"inbox: {len(list((self.state_dir / 'mail').glob('*.eml')))} email(s)")
        try:
            with db.transaction(self.fraud_db_url) as cur:
                cur.execute(
                    "SELECT count(*), count(*) FILTER (WHERE is_fraud_pred) FROM payments_scored "
                    "WHERE trans_time >= now() - interval '1 hour'"
                )
                scored, frauds = cur.fetchone() or (0, 0)
                cur.execute(
                    "SELECT count(*), count(*) FILTER (WHERE beyond_bound) FROM late_payments "
                    "WHERE fetched_at >= now() - interval '1 hour'"
                )
                late, beyond = cur.fetchone() or (0, 0)
                behind = watermark.lag(cur, clock.now())
                resent = mail.resends_since(cur, clock.now() - timedelta(hours=24))
                cur.execute("SELECT version FROM model_versions WHERE status = 'champion'")
                champion = (cur.fetchone() or (None,))[0]
            if self.wants("sagemaker-local"):
                from fraud_pipeline.registry.rollout import served_status

                parts.append(served_status(self.urls.model, champion))
            parts.append(
                f"last hour: {scored} payments scored, {frauds} frauds, "
                f"{late} late payments caught ({beyond} beyond the bound)"
            )
            parts.append(f"last 24 h: {resent} emails sent again as possible resends")
            parts.append(
                "behind: ? (nothing loaded yet)"
                if behind is None
                else f"behind: {behind.total_seconds() // 60:.0f} min"
            )
        except Exception as error:  # a status line must never stop the stack
            parts.append(f"database: {type(error).__name__}")
        return " · ".join(parts)

    def watch(self) -> int:
        """Status every `status_every` s until a child dies (1); Ctrl-C raises KeyboardInterrupt."""
        assert self.supervisor is not None
        next_status = time.monotonic() + self.options.status_every
        while True:
            time.sleep(1.0)
            self.backfill = self.check_backfill(self.backfill)
            dead = self.supervisor.exited()
            if dead:
                for child in dead:
                    self.say(f"! {child.name} exited with code {child.exit_code()}:")
                    print(child.log_tail(), flush=True)
                return 1
            if time.monotonic() >= next_status:
                self.say(self.status_line())
                next_status = time.monotonic() + self.options.status_every
        return 0

    def stop(self) -> list[str]:
        survivors: list[str] = []
        if self.supervisor is not None:
            self.say("stopping services …")
            survivors = self.stop_airflow_first()
            survivors += self.supervisor.stop(progress=self.say)
            if survivors:
                self.say("! still running after stop: " + "; ".join(survivors))
            else:
                self.say(f"all {len(self.supervisor.children)} services stopped, no process left")
        if self._embedded is not None:
            self._embedded.cleanup()  # type: ignore[attr-defined]
            self.say("embedded PostgreSQL stopped (data kept)")
            self._embedded = None
        # what runs where: nothing any more (a tool must not find a stopped stack's URLs); only
        # this stack's own file: a start refused for busy ports leaves the running one's alone
        if self.state_written:
            (self.state_dir / "stack.json").unlink(missing_ok=True)
        return survivors

    def stop_airflow_first(self) -> list[str]:
        """Airflow's scheduler (with its tasks) and the report first, while what a finishing
        task talks to still answers; survivors.

        A task stopped by SIGTERM reports its end to the API server (with the API server gone it
        retried until SIGKILL), and the runs the stop interrupts are marked failed rather than
        left "running": the next start catches their minutes up from the high-water mark.
        """
        assert self.supervisor is not None
        names = {c.name for c in self.supervisor.children}
        if self.airflow_home is None or "airflow-api-server" not in names:
            return []
        began = time.monotonic()
        survivors = self.supervisor.stop(FIRST_STOP_GRACE_S, self.say, names - SERVED_TO_TASKS)
        self.say(f"  scheduler and report stopped ({time.monotonic() - began:.1f} s)")
        client = self.airflow_client()
        try:
            for dag_id in airflow_local.DAG_IDS:
                for run in client.dag_runs(dag_id, limit=100):
                    if run["state"] in ("running", "queued"):
                        client.mark_interrupted(dag_id, run["dag_run_id"])
                        again = dag_id in airflow_local.RERUN_WHEN_INTERRUPTED
                        self.say(
                            f"  {dag_id} {run['dag_run_id']} interrupted: marked failed"
                            + (", runs again at the next start" if again else "")
                        )
        except (httpx.HTTPError, KeyError) as error:
            self.say(f"! could not mark the interrupted runs failed: {error!r}")
        finally:
            client.close()
        return survivors

    def run(self) -> int:
        """Start, report until Ctrl-C/SIGTERM (or a service dies), stop; the exit code."""
        # A background job starts with SIGINT ignored: handle both signals explicitly.
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, _interrupt)
        code = 0
        try:
            self.start()
            print(self.banner(), flush=True)
            code = self.watch()
        except KeyboardInterrupt:
            self.say("interrupted")
        except (RuntimeError, TimeoutError) as error:
            self.say(f"! {error}")
            code = 1
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, signal.SIG_IGN)  # let the stop finish
            survivors = self.stop()
        return 2 if survivors else code


def _done() -> bool:
    return True  # one-shot jobs have no health check: they end


def _interrupt(signum: int, frame: object) -> None:
    # Raising is all a handler may do safely: no locks (an Event.set() here can deadlock).
    raise KeyboardInterrupt


def main(
    *,
    state_dir: str | Path | None = None,
    free_ports: bool = False,
    ports: dict[str, int] | None = None,
    only: str | None = None,
    backfill: bool = True,
    backfill_hours: int = 24,
    history_days: int | None = None,
    payments_rate: float = 60.0,
    status_every: float = 30.0,
) -> int:
    """`fraud-dev run`; `ports` overrides some ports, `only` is comma-separated names."""
    settings = get_settings()
    chosen = Ports.free() if free_ports else Ports.from_settings(settings)
    if ports:
        chosen = Ports(**{**asdict(chosen), **ports})
    services = frozenset(only.split(",")) if only else None
    if services and not services <= set(COMPOSE_SERVICES):
        print(f"unknown service(s) in --only: {sorted(services - set(COMPOSE_SERVICES))}")
        return 2
    options = StackOptions(
        state_dir=Path(state_dir) if state_dir else settings.local_state_dir,
        ports=chosen,
        only=services,
        backfill=backfill,
        backfill_hours=backfill_hours,
        history_days=HISTORY_DAYS if history_days is None else history_days,
        status_every=status_every,
        payments_rate=payments_rate,
    )
    return LocalStack(options, settings).run()


def _redact(url: str) -> str:
    return db.redact(url)
