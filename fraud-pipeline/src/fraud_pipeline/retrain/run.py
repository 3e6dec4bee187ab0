"""One retraining, in the three steps the fraud_retrain DAG runs (and `fraud-pipeline retrain`):

1. `train_challenger`: train on the files plus the window's labelled payments before its holdout,
   in a temporary folder, and register the result as a challenger (its verified copy in
   MODEL_STORE). The same window gives the same version: a re-run finds it registered.
2. `judge`: score the holdout with the champion and the challenger (each verified against the
   registry) — all its payments, its new cards, and its analysts' verdicts, none of which the
   challenger trained on (the holdout is after its training rows) — record both evaluations,
   how many verdicts each side had, and the gate's decision on the challenger's row
   (metrics['evaluations'], metrics['gate']; the reason when it stays a challenger), and promote
   it when it passes.
   The promotion reloads the endpoint in the registry's transaction (versions._switch): if the
   endpoint does not take the challenger, it stays a challenger and the step fails, saying so.
3. `serve_champion`: the endpoint serves the champion (registry.rollout) — again after a
   promotion, a no-op reload; it is what a restarted server needs.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from psycopg2.extensions import connection as Connection

from fraud_pipeline import clock
from fraud_pipeline.config import Settings, get_settings
from fraud_pipeline.model.artifacts import load_model
from fraud_pipeline.model.train import train
from fraud_pipeline.registry import versions
from fraud_pipeline.registry.models import model_store
from fraud_pipeline.registry.rollout import deployer, roll_out
from fraud_pipeline.retrain.evaluate import compare
from fraud_pipeline.retrain.gate import Gate, decide
from fraud_pipeline.retrain.window import LabelledPayments, Window, load_labelled, stored_span
from fraud_pipeline.storage.db import connect

log = logging.getLogger(__name__)

RETRAINED_BY = "fraud_retrain"


class RetrainError(RuntimeError):
    """Retraining cannot go on: no champion to compare with, no labelled recent payments."""


@dataclass(frozen=True)
class Decision:
    version: str
    champion: str
    promoted: bool
    reason: str

    def as_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "champion": self.champion,
            "promoted": self.promoted,
            "reason": self.reason,
        }


def window_ending(end: datetime | None, settings: Settings, days: int | None = None) -> Window:
    """The window that ends at `end` (default: now), RETRAIN_WINDOW_DAYS long unless `days`."""
    days = days or settings.retrain_window_days
    if days <= settings.retrain_holdout_days:
        raise RetrainError(
            f"a window of {days} days leaves nothing to train on before its "
            f"{settings.retrain_holdout_days} holdout days (RETRAIN_HOLDOUT_DAYS)"
        )
    return Window.ending(end or clock.now(), days, settings.retrain_holdout_days)


# A scheduled slot run this long after its time was not run on time (the DAG was paused, the
# scheduler down): its window would be stale.
STALE_SLOT = timedelta(hours=6)


def window_for_run(
    logical: datetime | None,
    settings: Settings,
    days: int | None = None,
    *,
    scheduled: bool = False,
) -> tuple[Window, str]:
    """The window a run trains on, and a sentence saying which. A run at its time, or one asked
    for a logical date (a manual trigger, `dag.test`), ends its window at its logical date. A
    `scheduled` slot run late — `fraud_retrain` unpaused days after its Monday, the scheduler
    starting the most recent missed slot at once — would train on a week-old window: it takes
    the latest complete one instead, ending at the start of today (business day; a retry on the
    same day finds the same window)."""
    now = clock.now()
    end = logical or now
    note = ""
    today = clock.day_start(clock.today())
    if scheduled and logical is not None and now - logical > STALE_SLOT and logical < today:
        end = today
        note = (
            f"the slot of {logical.isoformat(timespec='minutes')} runs "
            f"{(now - logical).total_seconds() / 3600:.0f} h late (unpaused after it?): "
            "the latest complete window instead, "
        )
    window = window_ending(end, settings, days)
    return window, (
        f"{note}training on {window.start.isoformat(timespec='minutes')} to "
        f"{window.holdout_start.isoformat(timespec='minutes')}, measuring on "
        f"{window.holdout_start.isoformat(timespec='minutes')} to "
        f"{window.end.isoformat(timespec='minutes')}"
    )


def _split(conn: Connection, window: Window) -> tuple[LabelledPayments, LabelledPayments]:
    rows = load_labelled(conn, window)
    learn, holdout = rows.before(window.holdout_start), rows.since(window.holdout_start)
    if not len(holdout) or not len(learn):
        raise RetrainError(
            f"{len(learn)} labelled payments to learn from and {len(holdout)} to measure on in "
            f"{window.as_json()}: nothing to retrain on; {stored_span(conn)}"
        )
    return learn, holdout


def train_challenger(conn: Connection, window: Window, settings: Settings) -> versions.ModelVersion:
    """Train on the files and the window before its holdout; the registered challenger."""
    if versions.champion(conn) is None:
        raise RetrainError("no champion to compare a challenger with: `fraud-pipeline db migrate`")
    learn, _ = _split(conn, window)
    log.info("training a challenger on the files and %d recent payments", len(learn))
    with tempfile.TemporaryDirectory(prefix="fraud-retrain-") as folder:
        artifacts = Path(folder) / "challenger"
        metadata = train(artifacts, sample_rows=settings.retrain_sample_rows, recent=learn)
        found = versions.get_version(conn, str(metadata["model_version"]))
        if found is not None:  # a re-run on the same window: the same model, registered
            log.info("%s is already registered (%s)", found.version, found.status)
            return found
        return versions.register(conn, model_store(settings), artifacts, RETRAINED_BY)


def judge(conn: Connection, window: Window, version: str, settings: Settings) -> Decision:
    """Measure the champion and `version` on the holdout, record both, promote past the gate."""
    challenger = versions.get_version(conn, version)
    champion = versions.champion(conn)
    if challenger is None or champion is None:
        raise RetrainError(f"{version} or a champion is missing from the registry")
    if challenger.status != "challenger":  # decided by an earlier try of this run: it stands
        said = f"{version} is {challenger.status} already ({challenger.reason or 'no reason'})"
        return Decision(version, champion.version, challenger.status == "champion", said)
    learn, holdout = _split(conn, window)
    store = model_store(settings)
    evaluations = compare(
        load_model(versions.fetch_verified(store, champion)),
        load_model(versions.fetch_verified(store, challenger)),
        learn,
        holdout,
    )
    gate = Gate.from_settings(settings)
    verdict = decide(gate, evaluations["champion"]["all"], evaluations["challenger"]["all"])
    measured_verdicts = holdout.verdict_counts()
    reason = (
        f"{verdict.reason}; measured on {len(holdout):,} payments, "
        f"{sum(measured_verdicts.values()):,} of them labelled by analysts' verdicts "
        "(after the payments it trained on)"
    )
    log.info("%s against %s: %s", version, champion.version, reason)
    metrics = {
        "evaluations": {
            champion.version: {"role": "champion", **evaluations["champion"]},
            version: {"role": "challenger", **evaluations["challenger"]},
        },
        "evaluation_window": {
            **window.as_json(),
            "trained_on_payments": len(learn),
            "measured_payments": len(holdout),
            "measured_frauds": int(holdout.labels.sum()),
            "trained_on_verdicts": learn.verdict_counts(),
            "measured_verdicts": measured_verdicts,
        },
        "gate": {**gate.as_json(), "passed": verdict.passed, "reason": reason},
    }
    versions.record_evaluation(
        conn,
        version,
        metrics,
        None if verdict.passed else reason,
        training_data_to=window.holdout_start,
    )
    if verdict.passed:  # served with the registry change, or not promoted (SwitchError)
        versions.promote(conn, version, RETRAINED_BY, reason, deploy=deployer(settings, store))
    return Decision(version, champion.version, verdict.passed, reason)


def serve_champion(conn: Connection, settings: Settings) -> str:
    """Make the endpoint serve the registry's champion (local server reload or SageMaker)."""
    champion = versions.champion(conn)
    if champion is None:
        raise RetrainError("no champion to serve")
    return roll_out(versions.fetch_verified(model_store(settings), champion), champion, settings)


def retrain(
    conn: Connection, settings: Settings, *, end: datetime | None = None, days: int | None = None
) -> tuple[Decision, str | None]:
    """The three steps in a row; the rollout's outcome when the challenger was promoted."""
    window, said = window_for_run(end, settings, days)
    log.info("%s", said)
    challenger = train_challenger(conn, window, settings)
    decision = judge(conn, window, challenger.version, settings)
    return decision, serve_champion(conn, settings) if decision.promoted else None


def main(*, window_days: int | None = None) -> int:
    """`fraud-pipeline retrain`: one retraining now; exit 0 whether promoted or not."""
    settings = get_settings()
    conn = connect()
    try:
        decision, rollout = retrain(conn, settings, days=window_days)
    finally:
        conn.close()
    status = "champion" if decision.promoted else "challenger"
    print(f"{decision.version} (against {decision.champion}): {status}")
    print(decision.reason)
    if rollout:
        print(rollout)
    return 0
