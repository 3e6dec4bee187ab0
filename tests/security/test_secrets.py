"""No secret in the repository, none in the logs.

The repository: every tracked text file is searched for key and password patterns. Cloud keys,
private keys and API tokens are never allowed. A password or secret written as a value must be a
labelled laptop default (`dev-only-…`, which production refuses), a placeholder, a Compose
`${VAR}` (production requires it: test_airflow_credentials), or sit in a test fixture.

The logs: a whole run, with every secret set to a recognisable value and SMTP refusing the
login, must not write any of them to a log record, an exception or the settings' repr.
"""

from __future__ import annotations

import logging
import re
import subprocess
import traceback

import psycopg2
import pytest

from fraud_pipeline.config import REPO_ROOT, get_settings
from fraud_pipeline.pipeline.steps import run_interval
from tests.support.servers import Services, night_window

NEVER = {
    "AWS access key id": re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    "AWS secret key": re.compile(r"(?i)aws_secret_access_key\W{1,4}[A-Za-z0-9/+=]{40}\b"),
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "API token": re.compile(
        r"\b(gh[pousr]_[A-Za-z0-9]{36}|xox[baprs]-[A-Za-z0-9-]{10,}|sk-[A-Za-z0-9]{32,})"
    ),
}
URL_PASSWORD = re.compile(r"[a-z][a-z0-9+]*://[^/\s:@'\"]+:([^@\s'\"/]+)@")
ASSIGNED = re.compile(
    r"(?i)\b\w*(password|passwd|secret|token|api_key)\w*[\"']?\s*(?::\s*\w+\s*)?[:=]\s*"
    r"[\"']([^\"'\s]{4,})[\"']"
)
PLACEHOLDERS = {"local", "test", "testing", "PASSWORD"}


def tracked_text_files() -> dict[str, str]:
    names = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.split("\0")
    files = {}
    for name in filter(None, names):
        try:
            files[name] = (REPO_ROOT / name).read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
            continue  # binary (data, artifacts, images)
    return files


def acceptable(value: str, path: str) -> bool:
    return (
        value.startswith(("dev-only-", "${")) or value in PLACEHOLDERS or path.startswith("tests/")
    )


def test_no_secret_in_the_repository():
    files = tracked_text_files()
    assert len(files) > 100
    found = []
    for path, text in files.items():
        for label, pattern in NEVER.items():
            found += [f"{path}: {label}" for _ in pattern.finditer(text)]
        values = URL_PASSWORD.findall(text) + [m[1] for m in ASSIGNED.findall(text)]
        found += [f"{path}: secret value {v!r}" for v in values if not acceptable(v, path)]
    assert found == []


def test_the_scan_finds_what_it_looks_for():
    """The patterns catch real-looking secrets (the test is not vacuous)."""
    samples = [
        'SMTP_PASSWORD = "hunter2-prod"',
        "postgresql://app:Pr0dPassw0rd@db:5432/fraud_db",
        "AKIA" + "ABCDEFGHIJKLMNOP",
        "-----BEGIN RSA " + "PRIVATE KEY-----",
    ]
    for sample in samples:
        values = URL_PASSWORD.findall(sample) + [m[1] for m in ASSIGNED.findall(sample)]
        hard = [label for label, pattern in NEVER.items() if pattern.search(sample)]
        assert hard or [v for v in values if not acceptable(v, "src.py")], sample


def test_local_secrets_are_git_ignored():
    for path in (
        ".env",
        ".local/airflow/secrets.json",
        ".local/airflow/simple_auth_manager_passwords.json",
    ):
        ignored = subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO_ROOT, check=False)
        assert ignored.returncode == 0, f"{path} is not git-ignored"
    assert ".env" not in tracked_text_files()


SECRETS = {
    "CARD_TOKEN_KEY": "sentinel-card-token-key-7f3a9c",
    "SMTP_PASSWORD": "sentinel-smtp-password-51be2d",
}


def test_no_secret_in_logs_errors_or_settings(
    services: Services,
    clean_db: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
):
    """A run whose SMTP login fails (the server offers no AUTH): the error names no secret."""
    for name, value in {**SECRETS, "SMTP_USER": "fraud-alerts"}.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    settings = get_settings()
    caplog.set_level(logging.DEBUG)
    start, end = night_window(hours=0.25)
    conn = psycopg2.connect(clean_db)
    try:
        run_interval(conn, start.to_pydatetime(), end.to_pydatetime(), settings=settings)
        failure = ""
    except Exception:
        failure = traceback.format_exc()
    finally:
        conn.close()
    assert "SMTP" in failure and "refused the alert" in failure  # the login was attempted
    seen = "\n".join([caplog.text, failure, repr(settings), str(settings.model_dump())])
    leaked = [name for name, value in SECRETS.items() if value in seen]
    assert leaked == []
