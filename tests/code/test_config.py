"""Settings: one typed definition, read from the environment, strict in prod."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from fraud_pipeline.config import REPO_ROOT, Settings
from fraud_pipeline.ingest.cards import card_last4, card_token, mask_last4


def test_dev_profile_runs_with_defaults(monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    settings = Settings(_env_file=None)
    assert settings.fraud_profile == "dev"
    assert settings.business_tz == "Europe/Paris"


def test_prod_profile_names_every_missing_secret(monkeypatch):
    monkeypatch.setenv("FRAUD_PROFILE", "prod")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with pytest.raises(ValidationError) as error:
        Settings(_env_file=None)
    for name in ("CARD_TOKEN_KEY", "DATABASE_URL"):
        assert name in str(error.value)


def test_prod_profile_accepts_real_secrets(monkeypatch):
    monkeypatch.setenv("FRAUD_PROFILE", "prod")
    monkeypatch.setenv("CARD_TOKEN_KEY", "k" * 64)
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db/fraud_db")
    assert Settings(_env_file=None).database_url == "postgresql://u@db/fraud_db"


def test_unknown_time_zone_is_refused(monkeypatch):
    monkeypatch.setenv("BUSINESS_TZ", "Europe/Atlantis")
    with pytest.raises(ValidationError, match="Atlantis"):
        Settings(_env_file=None)


@pytest.mark.parametrize("name", ["DATABASE_URL", "REPORT_DATABASE_URL", "REVIEW_DATABASE_URL"])
@pytest.mark.parametrize("bad", ["localhost:5432", "postgresq://u:hunter2@db/fraud_db"])
def test_a_database_url_that_is_not_one_names_its_variable_never_its_password(
    monkeypatch, name, bad
):
    """Issue 32: `DATABASE_URL=localhost:5432` said only "Could not parse SQLAlchemy URL"."""
    monkeypatch.setenv(name, bad)
    with pytest.raises(ValidationError) as error:
        Settings(_env_file=None)
    message = str(error.value)
    assert f"{name}=" in message and "is not a PostgreSQL URL" in message
    assert "hunter2" not in message


def test_postgresql_urls_of_every_accepted_form_pass(monkeypatch):
    for url in (
        "postgresql://u@db/fraud_db",
        "postgres://u:p@db:5433/x",
        "postgresql+psycopg2://d",
    ):
        monkeypatch.setenv("DATABASE_URL", url)
        assert Settings(_env_file=None).database_url == url


def test_card_token_is_keyed_stable_and_not_the_number():
    number = "4382581175753077"
    token = card_token(number, b"key-1")
    assert token == card_token(number, b"key-1") and len(token) == 64
    assert token != card_token(number, b"key-2")
    assert number not in token
    assert card_last4(number) == "3077"
    assert mask_last4("3077") == "**** **** **** 3077"


@pytest.mark.parametrize("bad", ["", "12ab", "123", "1" * 25, None])
def test_malformed_card_numbers_are_refused(bad):
    with pytest.raises(ValueError, match="digits"):
        card_token(bad, b"key")


def test_env_example_names_only_settings_fields():
    names = {
        line.lstrip("# ").split("=", 1)[0]
        for line in (REPO_ROOT / ".env.example").read_text().splitlines()
        if re.match(r"#? ?[A-Z][A-Z0-9_]+=", line)
    }
    fields = {name.upper() for name in Settings.model_fields}
    assert names and names <= fields, sorted(names - fields)
