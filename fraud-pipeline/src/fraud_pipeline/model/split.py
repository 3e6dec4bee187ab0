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
"""

from __future__ import annotations

from typing import Final, Literal

import numpy as np
import pandas as pd

Group = Literal["train", "validation", "unseen"]

SPLIT_SEED: Final = 14
UNSEEN_START: Final = pd.Timestamp("2019-08-01")
SHARES: Final[dict[Group, float]] = {"train": 0.5, "validation": 0.25, "unseen": 0.25}


def card_groups(raw: pd.DataFrame) -> pd.Series:
    """Each card number of a labelled Sparkov frame → its group (same file and seed, same split)."""
    has_fraud = raw.groupby("cc_num")["is_fraud"].max().sort_index()
    rng = np.random.default_rng(SPLIT_SEED)
    groups: dict[str, Group] = {}
    for flag in (0, 1):
        cards = has_fraud.index[has_fraud.to_numpy() == flag].to_numpy()
        cards = cards[rng.permutation(len(cards))]
        bounds = np.cumsum([0.0, *SHARES.values()]) * len(cards)
        for name, start, end in zip(SHARES, bounds[:-1], bounds[1:], strict=True):
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
