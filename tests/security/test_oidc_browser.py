"""OpenID Connect through Streamlit's `st.login`, against a local provider started here
(tests/support/oidc.py): a real browser is sent to the provider, comes back with a signed id
token, and is signed in as the account an admin made for that email, with its role; an
identity with no account here is refused. Both leave audit rows."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest

from fraud_pipeline.security import audit, users
from fraud_pipeline.storage import db
from tests.support.browser import NEEDS_CHROMIUM, streamlit_report
from tests.support.oidc import Provider, oidc_provider
from tests.support.report import SeededDay

pytestmark = [pytest.mark.browser, pytest.mark.slow, NEEDS_CHROMIUM]


def secrets_toml(provider: Provider, path: Path) -> Path:
    """The report's [auth] settings for this provider, as .streamlit/secrets.toml holds them."""
    path.write_text(
        "[auth]\n"
        'redirect_uri = "http://127.0.0.1:{port}/oauth2callback"\n'
        f'cookie_secret = "{secrets.token_hex(32)}"\n'
        f'client_id = "{provider.client_id}"\n'
        f'client_secret = "{provider.client_secret}"\n'
        f'server_metadata_url = "{provider.metadata_url}"\n'
    )
    return path


@pytest.mark.parametrize("email", ["dana@example.com", "eve@example.com"])
def test_single_sign_on_through_the_local_provider(
    email: str, seeded: SeededDay, tmp_path: Path, browser: Any
) -> None:
    with db.transaction(seeded.url) as cur:
        users.add(cur, "dana@example.com", "analyst", "cli:test")  # eve has no account
    claims = {"sub": f"{email}-id", "email": email, "name": email.split("@")[0].title()}
    with oidc_provider(claims) as provider:
        options = ["--secrets.files", str(secrets_toml(provider, tmp_path / "secrets.toml"))]
        with streamlit_report(seeded.url, tmp_path / "streamlit.log", options) as url:
            page = browser.new_page()
            page.goto(url, wait_until="domcontentloaded")
            page.get_by_role("button", name="Sign in with single sign-on").click()
            if email == "dana@example.com":
                page.wait_for_selector('[data-testid="stMetricValue"]', timeout=60_000)
                page.get_by_text(f"Signed in as {email} (analyst)").wait_for(timeout=30_000)
                nav = " ".join(page.locator('[data-testid="stSidebarNavLink"]').all_inner_texts())
                assert "To review" in nav and "Users" not in nav
            else:
                page.get_by_text(f"{email} has no enabled account").wait_for(timeout=60_000)
                assert page.locator('[data-testid="stMetricValue"]').count() == 0
    assert provider.tokens_issued == 1  # the code was exchanged: a real OIDC round trip
    with db.transaction(seeded.url) as cur:
        assert audit.verify(cur).ok
        rows = [e for e in audit.recent(cur) if e.actor == email]
    action = audit.SIGN_IN if email == "dana@example.com" else audit.SIGN_IN_FAILED
    assert [(e.action, e.detail["via"], e.detail["sub"]) for e in rows] == [
        (action, "oidc", f"{email}-id")
    ]
