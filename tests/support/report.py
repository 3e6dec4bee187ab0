"""A seeded report: real Sparkov rows, scored, on yesterday and the day before (business time).

The expected numbers always come from independent SQL on `payments_scored` (as the owner, with
the day's bounds computed here in Python), never from the report's own functions."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd
import psycopg2
import psycopg2.extensions
from argon2 import PasswordHasher
from streamlit.testing.v1 import AppTest

from fraud_pipeline import clock
from fraud_pipeline.config import REPO_ROOT
from fraud_pipeline.security import users
from tests.support.factories import real_rows, scored_payments

PASSWORD = "correct horse battery staple"
APP = str(REPO_ROOT / "fraud-dashboard" / "app.py")


@dataclass(frozen=True)
class SeededDay:
    url: str
    day: date

    def bounds(self, day: date | None = None) -> tuple[datetime, datetime]:
        return clock.day_bounds(day or self.day)

    def one(self, query: str, day: date | None = None, **params: Any) -> Any:
        """One value of an SQL query over the day's rows (`%(lo)s <= trans_time < %(hi)s`)."""
        lo, hi = self.bounds(day)
        with psycopg2.connect(self.url) as conn, conn.cursor() as cur:
            cur.execute(query, {"lo": lo, "hi": hi, **params})
            row = cur.fetchone()
        conn.close()
        assert row is not None
        return row[0]

    def rows(self, query: str, day: date | None = None, **params: Any) -> list[tuple[Any, ...]]:
        lo, hi = self.bounds(day)
        with psycopg2.connect(self.url) as conn, conn.cursor() as cur:
            cur.execute(query, {"lo": lo, "hi": hi, **params})
            rows = cur.fetchall()
        conn.close()
        return rows

    def riskiest_alerts_of_the_day_alone(self) -> tuple[str, str]:
        """Leave only the day's alerts flagged (so verdicts land on the day shown); the two
        riskiest of them."""
        lo, hi = self.bounds()
        with psycopg2.connect(self.url) as conn, conn.cursor() as cur:
            cur.execute(
                "UPDATE payments_scored SET is_fraud_pred = false "
                "WHERE trans_time < %s OR trans_time >= %s",
                (lo, hi),
            )
        conn.close()
        first, second = (
            r[0]
            for r in self.rows(
                "SELECT trans_num FROM payments_scored WHERE trans_time >= %(lo)s "
                "AND trans_time < %(hi)s AND is_fraud_pred "
                "ORDER BY fraud_probability DESC, trans_time, trans_num LIMIT 2"
            )
        )
        return first, second


def day_of_payments(start: datetime, step_s: float, n: int = 640) -> pd.DataFrame:
    """`n` real scored payments from `start`, every `step_s` s, with all 18 real frauds."""
    pool = scored_payments(len(real_rows()), start=start)
    frauds = pool[pool["is_fraud"] == 1]
    frame = pd.concat([pool[pool["is_fraud"] == 0].head(n - len(frauds)), frauds])
    frame = frame.sample(frac=1.0, random_state=3).reset_index(drop=True)
    frame["trans_time"] = pd.Timestamp(start) + pd.to_timedelta(np.arange(n) * step_s, unit="s")
    return frame


def account(
    url: str, user: str = "analyst", role: str = "analyst", password: str = PASSWORD
) -> None:
    """`user`'s account with `role` and a password the test knows, made by `users.add` (an
    account the test made itself is left as it is)."""
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1 FROM app_users WHERE username = %s", (user,))
        if cur.fetchone() is None:
            users.add(cur, user, role, "cli:test")  # type: ignore[arg-type]
            cur.execute(
                "UPDATE app_users SET password_hash = %s WHERE username = %s",
                (PasswordHasher().hash(password), user),
            )
    conn.close()


# -- the page under AppTest ----------------------------------------------------------------------
def signed_in(password: str = PASSWORD, user: str = "analyst", **query: str) -> AppTest:
    """The app after `user` signed in with `password` (an analyst's account with PASSWORD made
    now if there is none)."""
    account(os.environ["DATABASE_URL"], user, "analyst")  # its password: PASSWORD
    app = AppTest.from_file(APP, default_timeout=60)
    app.query_params.update(query)
    app.run()
    assert not app.exception, app.exception
    app.text_input(key="login_user").input(user)
    app.text_input(key="login_password").input(password)
    app.button[0].click().run()
    assert not app.exception, app.exception
    return app


def table_with(app: AppTest, column: str) -> pd.DataFrame:
    """The page's tables that have `column`, in page order (their position moves as it grows)."""
    tables = [d.value for d in app.dataframe if column in d.value.columns]
    assert tables, f"no table with a {column!r} column"
    return tables


def metrics(app: AppTest) -> dict[str, tuple[str, str | None]]:
    return {m.label: (m.value, m.delta) for m in app.metric}


HEALTH_FEATURES = (
    "amt",
    "card_sum_24h",
    "card_night_share_30d",
    "log_amt",
    "card_category_count_24h",
)


def seed_model_health(
    url: str, until: date, days: int = 30, model_version: str = "xgb-test"
) -> None:
    """`days` days of monitor figures up to `until`, written by the monitor's own `store`; the
    last day's amount drifted (PSI 0.35 > 0.2) and its alerts quadrupled."""
    from datetime import timedelta

    from fraud_pipeline.monitoring.health import Figure, store

    rng = np.random.default_rng(7)
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        for back in range(days - 1, -1, -1):
            day = until - timedelta(days=back)
            last = back == 0
            alerts = float(rng.integers(40, 60)) * (4 if last else 1)
            median = None if back == days - 1 else 50.0
            values = [
                ("psi_score", round(float(rng.uniform(0.01, 0.06)), 4), 0.2),
                *(
                    (
                        f"psi_{n}",
                        0.35 if last and n == "amt" else round(float(rng.uniform(0, 0.08)), 4),
                        0.2,
                    )
                    for n in HEALTH_FEATURES
                ),
                ("flag_share", alerts / 12_000, 0.0137),
                ("alert_volume", alerts, None if median is None else 3 * median),
                ("quarantine_share", round(float(rng.uniform(0, 0.002)), 5), 0.01),
                ("confirmed_precision", round(float(rng.uniform(0.65, 0.8)), 3), 0.5),
            ]
            figures = [
                Figure(
                    metric, value, threshold, threshold is not None and crossed(value, threshold)
                )
                for metric, value, threshold in values
                for crossed in [float.__lt__ if metric == "confirmed_precision" else float.__gt__]
            ]
            figures.append(Figure("review_count", 64.0, 50.0, False))
            store(cur, day, model_version, figures)
    conn.close()
