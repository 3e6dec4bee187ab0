"""The customer split of the generated year: validation that looks like production.

In production most alerts that go wrong come from customers the model never saw, in their first
weeks. So the cards of `sparkov_train_2019.csv.gz` are split into three disjoint groups (a seeded
shuffle, stratified so each group holds its share of compromised cards, which keeps the natural
fraud rate):
- `train`: the model learns from their payments before UNSEEN_START;
- `validation`: early stopping and the decision threshold;
- `unseen`: only measured.
Validation and unseen customers are also split by time: only their payments from UNSEEN_START on
are kept, so each of them starts cold, at the first payment the model knows of, after everything
training read. `evaluate --split unseen-customers` rebuilds the same split from the file.

The training customers are each new only once in the file (its first days, January 2019), while
production meets thousands of new cards a day. So training also reads cold-start replicas
(`cold_start_replicas`): the training cards' payments again from each of COLD_RESTARTS, for
COLD_DAYS, as if the card were new at that date (its history read from that date on only).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal

import numpy as np
import pandas as pd

Group = Literal["train", "validation", "unseen"]
ValidationPart = Literal["tune", "untouched"]

SPLIT_SEED: Final = 14
UNSEEN_START: Final = pd.Timestamp("2019-08-01")
SHARES: Final[dict[Group, float]] = {"train": 0.5, "validation": 0.25, "unseen": 0.25}
# Twice a week, a fresh start for every training card; each covers a new card's first week.
# Measured on generated weeks of new customers (README, Model): without replicas precision 0.72,
# weekly 0.84, twice a week 0.87 at recall 0.86 (every 3 days: 0.89, but the real rows' false
# alarms come within 0.02 points of the product's 0.5%).
COLD_RESTARTS: Final = pd.date_range("2019-01-04", UNSEEN_START - pd.Timedelta(days=7), freq="84h")
COLD_DAYS: Final = pd.Timedelta(days=7)

# The validation run (another seed and period, every card new on 1 January 2020) is split by
# customer: `tune` chooses the model, stops the boosting and sets the threshold; `untouched` is
# read by nothing but the final measurement (`evaluate --split validation-untouched`).
VALIDATION_RUN_SEED: Final = 31
VALIDATION_RUN_SHARES: Final[dict[ValidationPart, float]] = {"tune": 0.5, "untouched": 0.5}


def card_groups(raw: pd.DataFrame) -> pd.Series:
    """Each card number of a labelled Sparkov frame → its group (same file and seed, same split)."""
    return _stratified_cards(raw, SHARES, SPLIT_SEED)


def validation_run_groups(raw: pd.DataFrame) -> pd.Series:
    """Each card of the validation run (`sparkov_validation_2020h1`) → `tune` or `untouched`
    (VALIDATION_RUN_SHARES, same stratified seeded shuffle as `card_groups`)."""
    return _stratified_cards(raw, VALIDATION_RUN_SHARES, VALIDATION_RUN_SEED)


def validation_run_rows(raw: pd.DataFrame, part: ValidationPart) -> np.ndarray:
    """Rows of the validation run's cards in `part`."""
    return (raw["cc_num"].map(validation_run_groups(raw)) == part).to_numpy()


def _stratified_cards(raw: pd.DataFrame, shares: Mapping[Any, float], seed: int) -> pd.Series:
    """Cards shuffled with `seed` into `shares`, compromised and clean cards each on their own."""
    has_fraud = raw.groupby("cc_num")["is_fraud"].max().sort_index()
    rng = np.random.default_rng(seed)
    groups: dict[str, str] = {}
    for flag in (0, 1):
        cards = has_fraud.index[has_fraud.to_numpy() == flag].to_numpy()
        cards = cards[rng.permutation(len(cards))]
        bounds = np.cumsum([0.0, *shares.values()]) * len(cards)
        for name, start, end in zip(shares, bounds[:-1], bounds[1:], strict=True):
            groups.update(dict.fromkeys(cards[round(start) : round(end)], name))
    return pd.Series(groups, name="group").sort_index()


def row_groups(raw: pd.DataFrame) -> np.ndarray:
    """The group of each row's card."""
    return raw["cc_num"].map(card_groups(raw)).to_numpy()


def cold_start_rows(raw: pd.DataFrame, group: Group) -> np.ndarray:
    """Rows of the group's cards from UNSEEN_START on: those cards' first payments as far as
    anything downstream knows (earlier rows are dropped, not used as history)."""
    return (row_groups(raw) == group) & from_unseen_start(raw)


def from_unseen_start(raw: pd.DataFrame) -> np.ndarray:
    """Rows at or after UNSEEN_START (the file's wall-clock time)."""
    times = pd.to_datetime(raw["trans_date_trans_time"]).to_numpy()
    return np.asarray(times >= UNSEEN_START.to_datetime64())


def cold_start_replicas(
    raw: pd.DataFrame, payments: pd.DataFrame, rows: np.ndarray
) -> pd.DataFrame:
    """`payments[rows]` again from each COLD_RESTARTS date for COLD_DAYS, each copy on its own
    card token (`<token>@<date>`), so featurised alone its history starts at that date."""
    times = pd.to_datetime(raw["trans_date_trans_time"]).to_numpy()
    copies = []
    for start in COLD_RESTARTS:
        window = (
            rows & (times >= start.to_datetime64()) & (times < (start + COLD_DAYS).to_datetime64())
        )
        copy = payments[window]
        copies.append(copy.assign(card_token=copy["card_token"] + f"@{start:%Y-%m-%dT%H}"))
    return pd.concat(copies, ignore_index=True)
