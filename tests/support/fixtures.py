"""The tests' one conftest plugin: every shared fixture and hook, loaded by tests/conftest.py.

A real PostgreSQL database per session (DATABASE_URL's server, else 127.0.0.1:5432, else an
embedded throwaway one), real services on loopback (payments API, model server, SMTP), moto's
AWS, a seeded report day, the reliability stack behind fault proxies, and the session options
(`--now`) and header. Helpers that are not fixtures live beside it in `tests.support`.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import psycopg2
import psycopg2.extensions
import pytest
import streamlit as st
from moto import mock_aws

from fraud_devstack.stack import payments_api
from fraud_devstack.stack.faults import FaultProxy
from fraud_devstack.stack.mailcatcher import MailCatcher
from fraud_pipeline import clock
from fraud_pipeline.config import get_settings
from fraud_pipeline.model.artifacts import load_model
from fraud_pipeline.net import free_port
from fraud_pipeline.registry.versions import set_up_database
from fraud_pipeline.serving import model_server
from fraud_pipeline.serving.sagemaker_deploy import Release
from fraud_pipeline.storage import db
from fraud_pipeline.storage.upsert import upsert_scored
from tests.support import fresh_machine, processes
from tests.support.airflow_runs import airflow_home, close_interpreters
from tests.support.aws import FAKE_CREDENTIALS, REGION, TARGET
from tests.support.cards import Recorder
from tests.support.database import (
    check_fresh_machine,
    describe_postgres,
    session_server,
    session_urls,
    truncate_app_tables,
)
from tests.support.factories import scored_payments
from tests.support.reliability import TABLE, Outcome, Stack, ThrowawayPostgres, format_table
from tests.support.report import SeededDay, day_of_payments
from tests.support.runs import card_leaks
from tests.support.servers import Services, night_window, serve_app

# --- the session: --now, the header, the fresh-machine guard, the database ---------------

_PREVIOUS_NOW = pytest.StashKey[str | None]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--now",
        metavar="INSTANT",
        help="freeze the business clock (FRAUD_NOW) at this ISO instant with offset, "
        "e.g. 2026-03-29T23:30:00+02:00",
    )
    parser.addoption(
        "--clock-instants",
        metavar="INSTANTS",
        help="run every `clock` test once at each of these ISO instants (space-separated), "
        "in this one session (`make test`, `make test-clock`)",
    )


def clock_instants(config: pytest.Config) -> list[str]:
    """The instants of --clock-instants, each checked (a usage error names a bad one)."""
    instants = (config.getoption("--clock-instants") or "").split()
    for instant in instants:
        try:
            clock.parse_instant(instant)
        except ValueError as error:
            raise pytest.UsageError(f"--clock-instants: {instant}: {error}") from error
    return instants


def pytest_configure(config: pytest.Config) -> None:
    if clock_instants(config) and config.getoption("--now"):
        raise pytest.UsageError("--now and --clock-instants: give one or the other")
    instant = config.getoption("--now")
    if instant:
        try:
            clock.parse_instant(instant)
        except ValueError as error:
            raise pytest.UsageError(f"--now: {error}") from error
        config.stash[_PREVIOUS_NOW] = os.environ.get(clock.FRAUD_NOW)
        os.environ[clock.FRAUD_NOW] = instant


def pytest_unconfigure(config: pytest.Config) -> None:
    if _PREVIOUS_NOW in config.stash:
        previous = config.stash[_PREVIOUS_NOW]
        if previous is None:
            os.environ.pop(clock.FRAUD_NOW, None)
        else:
            os.environ[clock.FRAUD_NOW] = previous


def pytest_sessionstart(session: pytest.Session) -> None:
    try:
        check_fresh_machine()
    except fresh_machine.FreshMachineViolation as error:
        pytest.exit(f"fresh-machine guard: {error}", returncode=1)


def pytest_report_header(config: pytest.Config) -> list[str]:
    frozen = "frozen" if os.environ.get(clock.FRAUD_NOW) else "real"
    lines = [
        *fresh_machine.who_and_what(),
        describe_postgres(),
        f"business clock: {clock.now().isoformat()} ({frozen})",
    ]
    try:
        check_fresh_machine()  # the embedded server is known now: check it before any test
    except fresh_machine.FreshMachineViolation as error:
        pytest.exit(f"fresh-machine guard: {error}", returncode=1)
    return lines


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    try:
        check_fresh_machine()
    except fresh_machine.FreshMachineViolation as error:
        print(f"\nfresh-machine guard at session end: {error}", file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook turns the marks into groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that start a whole stack (`launch_stack`) share one xdist worker (`--dist
    loadgroup`): they run one after the other, never two stacks beside each other."""
    for item in items:
        if "launch_stack" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("stack"))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """With --clock-instants, each `clock` test runs once per instant (through `frozen_now`)."""
    instants = clock_instants(metafunc.config)
    if instants and metafunc.definition.get_closest_marker("clock"):
        metafunc.parametrize("frozen_now", instants, indirect=True, ids=lambda i: f"now={i}")


@pytest.fixture(autouse=True)
def frozen_now(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str | None:
    """The instant this test runs at (--clock-instants), frozen in FRAUD_NOW before any other
    fixture of the test, for it and its subprocesses; None: the session's clock (--now or real)."""
    instant = getattr(request, "param", None)
    if instant is not None:
        monkeypatch.setenv(clock.FRAUD_NOW, instant)
    return instant


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """URL of this session's own, fully migrated database (dropped at the end)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    url = db.with_database(session_server().url, f"fraud_test_{worker}_{uuid.uuid4().hex[:8]}")
    session_urls.append(url)
    check_fresh_machine()
    previous = os.environ.get("DATABASE_URL")
    os.environ["DATABASE_URL"] = url
    get_settings.cache_clear()
    set_up_database(url)
    try:
        yield url
    finally:
        db.drop_database(url)
        if previous is None:
            os.environ.pop("DATABASE_URL", None)
        else:
            os.environ["DATABASE_URL"] = previous
        get_settings.cache_clear()


@pytest.fixture
def clean_db(database_url: str) -> str:
    """The session database with every application table emptied before the test."""
    truncate_app_tables(database_url)
    return database_url


@pytest.fixture
def conn(clean_db: str) -> Iterator[psycopg2.extensions.connection]:
    connection = psycopg2.connect(clean_db)
    try:
        yield connection
    finally:
        connection.close()


@pytest.fixture(scope="session")
def airflow_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """An AIRFLOW_HOME with a migrated metadata database, once per session; the interpreter
    that ran the session's Airflow code (`airflow_runs.run_python`) stops with it."""
    try:
        yield airflow_home(tmp_path_factory.mktemp("airflow_home"))
    finally:
        close_interpreters()


# --- real services on loopback: payments API, model server, SMTP -------------------------


@pytest.fixture
def services(clean_db, tmp_path, monkeypatch) -> Iterator[Services]:
    """Generator-fed payments API, the real model server and an SMTP server, all on free ports."""
    payments = serve_app(
        payments_api.build_app(payments_api.generator_source(seed=11, rate_per_min=40))
    )
    model = serve_app(model_server.build_app(get_settings().artifacts_dir))
    mail = MailCatcher(tmp_path / "mail", port=free_port()).start()
    env = {
        "PAYMENTS_API_URL": payments.url,
        "SAGEMAKER_ENDPOINT_URL": model.url,
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(mail.port),
        # The tests replay past windows (last night) as if live: their frauds are alerted one
        # by one, not summarised in a catch-up digest (tests/alerting sets its own age).
        "ALERT_MAX_AGE_MIN": str(14 * 24 * 60),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    try:
        yield Services(get_settings(), mail, payments, model)
    finally:
        for server in (payments, model):
            server.stop()
        mail.stop()
        get_settings.cache_clear()


# --- the model server alone, and moto's AWS -------------------------------------------------


@pytest.fixture(scope="session")
def model_server_url() -> Iterator[str]:
    """The real model server (same code and server as the SageMaker container) on the artifacts."""
    server = serve_app(model_server.build_app(get_settings().artifacts_dir))
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def aws(monkeypatch) -> Iterator[tuple[Any, Any]]:
    """moto's SageMaker and S3 (with our bucket); fake credentials so nothing reaches AWS."""
    for name, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(
            Bucket=TARGET.bucket, CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        yield boto3.client("sagemaker", region_name=REGION), s3


@pytest.fixture(scope="module")
def release() -> Release:
    """The committed model artifacts, verified."""
    return Release.from_artifacts(get_settings().artifacts_dir)


@pytest.fixture
def artifacts_copy(tmp_path: Path) -> Path:
    """A copy of the committed model artifacts, free to alter."""
    target = tmp_path / "artifacts"
    shutil.copytree(get_settings().artifacts_dir, target)
    return target


# --- a seeded report day ----------------------------------------------------------------------


@pytest.fixture
def seeded(conn: psycopg2.extensions.connection, clean_db: str) -> SeededDay:
    """640 real payments over yesterday, 400 the day before, a few the day after."""
    day = clock.yesterday()
    midnight, next_midnight = clock.day_bounds(day)
    step = clock.elapsed(midnight, next_midnight).total_seconds() * 0.99 / 640  # 23-25 h
    upsert_scored(conn, day_of_payments(midnight + timedelta(seconds=30), step))
    before = clock.day_start(day - timedelta(days=1))
    upsert_scored(conn, scored_payments(400, start=before + timedelta(hours=1), seed=1, step_s=180))
    after = next_midnight + timedelta(minutes=5)
    upsert_scored(conn, scored_payments(20, start=after, seed=2, step_s=60))
    return SeededDay(clean_db, day)


@pytest.fixture
def report_env(monkeypatch: pytest.MonkeyPatch, database_url: str) -> Iterator[None]:
    """The app's settings for a test: fresh Streamlit caches (`report.signed_in` makes the
    analyst's account)."""
    monkeypatch.delenv("REPORT_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    get_settings.cache_clear()
    st.cache_data.clear()
    st.cache_resource.clear()


# --- reliability: the services behind fault proxies, the scenario table, a crashable server ---


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not TABLE:
        return
    terminalreporter.section("reliability scenarios (got / expected)")
    for line in format_table(TABLE):
        terminalreporter.write_line(line)
    terminalreporter.write_line("")
    terminalreporter.write_line("what the pipeline logged during the fault:")
    for row in TABLE:
        terminalreporter.write_line(f"  {row.scenario}: {row.message}")


@pytest.fixture
def outcomes() -> list[Outcome]:
    return TABLE


@pytest.fixture
def launch_stack() -> Iterator[Callable[..., processes.Stack]]:
    """Start `fraud-dev run` stacks (`launch_stack(state_dir, *args)`); however the test ends
    (passed, failed, timed out), each is stopped and nothing carrying its id is left running."""
    stacks: list[processes.Stack] = []

    def launch(state_dir: Path, *args: str) -> processes.Stack:
        stacks.append(processes.Stack(state_dir, *args))
        return stacks[-1]

    try:
        yield launch
    finally:
        for stack in stacks:
            stack.ensure_stopped()


@pytest.fixture(scope="session")
def model():
    return load_model()


@pytest.fixture
def stack(services: Services, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    model_proxy = FaultProxy(services.settings.sagemaker_endpoint_url or "").start()
    payments_proxy = FaultProxy(services.settings.payments_api_url).start()
    monkeypatch.setenv("PAYMENTS_API_URL", payments_proxy.url)
    monkeypatch.setenv("SAGEMAKER_ENDPOINT_URL", model_proxy.url)
    monkeypatch.setenv("PAYMENTS_API_TIMEOUT_S", "2")
    get_settings.cache_clear()
    # A past night (frauds are mostly at night): 45 minutes, three 15-minute runs.
    _, end = night_window(0)
    try:
        yield Stack(
            services,
            model_proxy,
            payments_proxy,
            get_settings(),
            (end - pd.Timedelta("45min"), end),
        )
    finally:
        model_proxy.stop()
        payments_proxy.stop()
        get_settings.cache_clear()


@pytest.fixture(autouse=True)
def no_card_number_left(request: pytest.FixtureRequest) -> Iterator[None]:
    """After every test of tests/reliability: no input card number in its database (every table),
    its logs (every logger, every level, exception text included) or its mail."""
    if "tests/reliability/" not in request.path.as_posix():
        yield
        return
    recorder, root = Recorder(), logging.getLogger()
    level = root.level
    root.addHandler(recorder)
    root.setLevel(logging.DEBUG)
    try:
        # Asked for here, so that they are torn down after the scan.
        stack = request.getfixturevalue("stack") if "stack" in request.fixturenames else None
        urls = [request.getfixturevalue("clean_db")] if "clean_db" in request.fixturenames else []
        if "throwaway_postgres" in request.fixturenames:
            urls.append(request.getfixturevalue("throwaway_postgres").url)
        yield
    finally:
        root.removeHandler(recorder)
        root.setLevel(level)
    leaks = card_leaks(stack, urls, recorder.records)
    if leaks:
        pytest.fail("input card numbers left unmasked:\n" + "\n".join(leaks[:50]), pytrace=False)


@pytest.fixture(scope="session")
def throwaway_postgres() -> Iterator[ThrowawayPostgres]:
    """Never the shared server on :5432: restarting that one would break everyone's tests."""
    import pgserver

    data_dir = Path(tempfile.mkdtemp(prefix="fraud-restart-")) / "pgdata"
    server_url = db.start_embedded_server(data_dir, throwaway=True)
    url = db.with_database(server_url, "fraud_restart")
    set_up_database(url)
    server = ThrowawayPostgres(data_dir, url)
    try:
        yield server
    finally:
        server.stop()
        pgserver.get_server(data_dir).cleanup()  # deletes the data directory


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless Debian Chromium driven by Playwright (tests/support/browser.py)."""
    from playwright.sync_api import sync_playwright

    from tests.support.browser import CHROMIUM, CHROMIUM_ARGS

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
